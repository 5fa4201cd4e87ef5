"""Every refusal has its HTTP status and close code in transport/wire_codes.py's one table."""

from __future__ import annotations

from actors import errors
from transport import wire_codes


def _refusals(cls: type[errors.JoinRefused]) -> list[type[errors.JoinRefused]]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_refusals(sub))]


def test_every_refusal_has_a_row_and_a_fitting_status_and_close_code() -> None:
    # The core's tree; subclasses made elsewhere (transport/cluster_relay.py's
    # SocketClosed, the one in the test below) answer as their parent.
    for refusal in [c for c in _refusals(errors.JoinRefused) if c.__module__ == errors.__name__]:
        codes = wire_codes.REFUSALS[refusal]
        assert 400 <= codes.http_status < 600, refusal
        assert codes.close_code in (1001, 1008) or 4000 <= codes.close_code < 5000, refusal


def test_an_instance_answers_as_its_class_and_a_subclass_as_its_parent() -> None:
    assert wire_codes.http_status(errors.RoomFull()) == 409 and wire_codes.close_code(errors.RoomFull) == 4429

    class Newer(errors.Unauthorized):
        pass

    assert wire_codes.wire_codes(Newer()) == wire_codes.REFUSALS[errors.Unauthorized]


def test_the_core_keeps_no_http_status_or_close_code_on_its_errors() -> None:
    for refusal in (errors.JoinRefused, *_refusals(errors.JoinRefused)):
        assert not hasattr(refusal, "http_status") and not hasattr(refusal, "close_code"), refusal
