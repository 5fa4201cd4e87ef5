"""Settings: defaults, env vars, flags, and one clear line for a bad value."""

from __future__ import annotations

import pytest

from transport.settings import Settings, SettingsError, load


def test_defaults_work_on_a_laptop_with_nothing_else_running() -> None:
    s = load([], environ={})
    assert (s.host, s.port, s.metrics_port, s.token_mode, s.max_frame_bytes) == ("127.0.0.1", 8080, 8081, False, 65536)
    assert s.ice_server_list() == []


def test_every_setting_reads_an_env_var_and_a_flag_wins_over_it() -> None:
    env = {"SIGNALING_PORT": "9000", "SIGNALING_MAX_MEMBERS": "4", "SIGNALING_STUB_TTL": "1.5"}
    s = load(["--max-members", "8"], environ=env)
    assert (s.port, s.max_members, s.stub_ttl) == (9000, 8, 1.5)


@pytest.mark.parametrize(
    ("argv", "env", "mentions"),
    [
        (["--port", "http"], {}, "--port"),
        ([], {"SIGNALING_PORT": "70000"}, "port"),
        ([], {"SIGNALING_MAX_MEMBERS": "0"}, "max_members"),
        (["--ice-servers", "[{]"], {}, "ice_servers"),
        (["--ice-servers", '[{"url": "stun:x"}]'], {}, "ice_servers"),
        (["--secret", "short"], {}, "secret"),
        (["--log-format", "xml"], {}, "log_format"),
        (["--loop", "tokio"], {}, "loop"),
        (["--stub-ttl", "-1"], {}, "stub_ttl"),
    ],
)
def test_bad_values_raise_one_line_naming_the_setting(argv: list[str], env: dict[str, str], mentions: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load(argv, environ=env)
    assert mentions in str(raised.value) and "\n" not in str(raised.value)


def test_origins_are_normalised() -> None:
    assert Settings(allowed_origins="https://a.test/, https://b.test").origins == {"https://a.test", "https://b.test"}
