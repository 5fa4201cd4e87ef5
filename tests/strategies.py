"""Hypothesis strategies for signaling frames, shared by the fuzz and schema tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)
ids = st.text(alphabet="abcAZ09_-", min_size=1, max_size=8) | st.text(max_size=70)
# Values at the edges of the schema's limits.
edges = st.sampled_from(
    [
        0,
        -1,
        65535,
        65536,
        True,
        False,
        1.0,
        "",
        "x" * 64,
        "x" * 65,
        "x" * 256,
        "x" * 257,
        "x" * 1024,
        "x" * 1025,
        "offer",
        "answer",
        "pranswer",
        "rollback",
        None,
        [],
        {},
    ]
)
candidates = st.fixed_dictionaries(
    {"candidate": st.text(max_size=30)},
    optional={
        "sdpMid": st.none() | st.text(max_size=5),
        "sdpMLineIndex": st.none() | st.integers(0, 65535),
        "usernameFragment": st.none() | st.text(max_size=8),
        "app": json_values,
    },
)
descriptions = st.builds(
    lambda kind, answer_kind, sdp, extra: {"type": "offer" if kind == "offer" else answer_kind, "sdp": sdp, **extra},
    st.sampled_from(["offer", "answer"]),
    st.sampled_from(["answer", "pranswer"]),
    st.text(max_size=30),
    st.dictionaries(st.sampled_from(["app", "x"]), json_values, max_size=1),
)


@st.composite
def valid_frame_dicts(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["offer", "answer", "ice-candidate"]))
    frame: dict[str, Any] = {"type": kind, "to": "peer"}
    if kind == "ice-candidate":
        frame["data"] = draw(candidates)
    else:
        description = draw(descriptions)
        description["type"] = (
            "offer" if kind == "offer" else description["type"] if description["type"] != "offer" else "answer"
        )
        frame["data"] = description
    if draw(st.booleans()):
        frame.pop("to")
    if draw(st.booleans()):
        frame["from"] = draw(st.sampled_from(["me", "peer"]))
    return frame


valid_frames = valid_frame_dicts()


@st.composite
def mutated_frames(draw: st.DrawFn) -> dict[str, Any]:
    frame: dict[str, Any] = dict(draw(valid_frames))
    for _ in range(draw(st.integers(1, 3))):
        key = draw(
            st.sampled_from(
                [
                    "type",
                    "to",
                    "from",
                    "data",
                    "extra",
                    "data.sdp",
                    "data.candidate",
                    "data.sdpMLineIndex",
                    "data.type",
                    "data.sdpMid",
                    "data.usernameFragment",
                ]
            )
        )
        value = draw(json_values | ids | edges)
        if key.startswith("data.") and isinstance(frame.get("data"), dict):
            frame["data"] = {**frame["data"], key[5:]: value}
        elif draw(st.booleans()):
            frame.pop(key, None)
        else:
            frame[key] = value
    return frame
