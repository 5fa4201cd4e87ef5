"""The docs stay true to the code: every setting, error code and close code is documented."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from actors import errors
from transport import wire_codes
from transport.settings import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Settings)])
def test_every_setting_is_in_the_operations_guide(field: str) -> None:
    text = (DOCS / "operations.md").read_text()
    assert f"`--{field.replace('_', '-')}`" in text and f"`SIGNALING_{field.upper()}`" in text


def _error_classes() -> list[type[errors.SignalingError]]:
    return [
        c
        for c in vars(errors).values()
        if isinstance(c, type)
        and issubclass(c, errors.SignalingError)
        and "code" in vars(c)
        and c is not errors.SignalingError
    ]


@pytest.mark.parametrize("error", _error_classes(), ids=lambda c: c.__name__)
def test_every_error_code_is_in_the_protocol_doc(error: type[errors.SignalingError]) -> None:
    assert f"`{error.code}`" in (DOCS / "protocol.md").read_text()


@pytest.mark.parametrize(
    "code",
    sorted(
        {v for k, v in vars(errors).items() if k.startswith("CLOSE_")}
        | wire_codes.CLOSE_CODES
        | {wire_codes.close_code(c) for c in _error_classes() if issubclass(c, errors.JoinRefused)}
    ),
)
def test_every_close_code_is_in_the_protocol_doc(code: int) -> None:
    assert f"| {code} |" in (DOCS / "protocol.md").read_text()


def test_every_exported_metric_is_in_the_observability_guide() -> None:
    from prometheus_client import CollectorRegistry

    from metrics.signaling import SignalingMetrics

    registry = CollectorRegistry()
    SignalingMetrics(registry)
    text = (DOCS / "observability.md").read_text()
    for family in registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "_info" if family.type == "info" else "")
        assert f"`{name}`" in text, name
