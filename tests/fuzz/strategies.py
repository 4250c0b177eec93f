"""Turn payloads for fuzzing: the real examples mutated, shapes Turn might send, and noise.

Mutations work on the parsed example: a node (anywhere in the tree) is replaced by another JSON
value, deleted, or given a value of the wrong type; strings that PostgreSQL or the parsers find
hard (`\\u0000`, lone surrogates escaped, huge numbers as text, odd times) are drawn often.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
from hypothesis import strategies as st

from tests.conftest import EXAMPLES

EXAMPLE_BODIES: dict[str, Any] = {
    path.name: orjson.loads(path.read_bytes()) for path in sorted(EXAMPLES.glob("*.json"))
}
WEBHOOK_EXAMPLES = {k: v for k, v in EXAMPLE_BODIES.items() if k.startswith("webhook_")}

HARD_STRINGS = st.sampled_from(
    [
        "",
        "\u0000",
        "a\u0000b",
        "\\u0000",
        "\ud7ff\ue000",
        "🙂" * 3,
        "9" * 40,
        "-1",
        "1e400",
        "NaN",
        "2025-13-45T25:61:61Z",
        "2025-01-01T00:00:00",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59.999999-14:00",
        "1700000000",
        "99999999999999",
        "statuses",
        "turn",
    ]
)
TURN_KEYS = st.sampled_from(
    [
        "messages",
        "statuses",
        "contacts",
        "errors",
        "_vnd",
        "v1",
        "id",
        "type",
        "timestamp",
        "status",
        "from",
        "to",
        "text",
        "body",
        "wa_id",
        "profile",
        "details",
        "updated_at",
        "inserted_at",
        "recipient_id",
        "conversation",
        "pricing",
        "direction",
        "context",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | HARD_STRINGS
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(TURN_KEYS | st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _nodes(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _nodes(child, (*path, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, examples: dict[str, Any] = EXAMPLE_BODIES) -> Any:
    """A real example with one to four nodes replaced, deleted or retyped."""
    value = copy.deepcopy(examples[draw(st.sampled_from(sorted(examples)))])
    for _ in range(draw(st.integers(1, 4))):
        paths = _nodes(value)
        path = draw(st.sampled_from(paths))
        replacement = draw(JSON)
        if not path:
            value = replacement
            continue
        parent = value
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = replacement
    return value


def envelope() -> st.SearchStrategy[Any]:
    """A webhook envelope made up from scratch: Turn's array names over arbitrary items."""
    return st.dictionaries(
        st.sampled_from(["messages", "statuses", "contacts", "errors", "other"]),
        st.lists(JSON | st.dictionaries(TURN_KEYS, JSON, max_size=6), max_size=4),
        min_size=1,
        max_size=4,
    )


def json_body() -> st.SearchStrategy[bytes]:
    """Valid JSON of a Turn-like shape, as bytes."""
    return (mutated() | envelope() | JSON).map(_dump)


def any_body() -> st.SearchStrategy[bytes]:
    """JSON bodies, plus bytes that are not JSON or not UTF-8 at all."""
    return json_body() | st.binary(max_size=300) | json_body().map(lambda b: b[: len(b) // 2])


def _dump(value: Any) -> bytes:
    # Integers past 64 bits are not JSON orjson writes; text keeps them as Turn might send them.
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return repr(value).encode()


def subscriptions() -> st.SearchStrategy[str]:
    printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
    return st.sampled_from(["whatsapp", "turn", "journey_outbound", "engage", "", "TURN"]) | (
        st.text(printable, max_size=30)
    )


EXAMPLE_FILES = sorted(Path(EXAMPLES).glob("*.json"))
