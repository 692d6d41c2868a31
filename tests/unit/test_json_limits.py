"""The nesting-depth scan agrees with a decoder's view of depth, and ignores brackets inside strings."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from tocsin_server.web.json_limits import BodyRejectedError, check_json_body, nesting_depth_exceeds


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@pytest.mark.parametrize(
    "document",
    [
        {"a": 1},
        [[], [], [[]]],
        {"a": [{"b": [1, 2, {"c": []}]}], "d": "[[[[[[["},
        {"esc": 'a \\" [[[[ \\\\', "more": [[["]]]]]]"]]]},
        [{"k": [[[[[]]]]]} for _ in range(50)],
    ],
)
@pytest.mark.parametrize("limit", [1, 2, 3, 4, 5, 6, 7, 8])
def test__the_scan_matches_the_decoded_depth(document: Any, limit: int) -> None:
    body = json.dumps(document).encode()
    assert nesting_depth_exceeds(body, limit) == (_depth(document) > limit)


def test__a_wide_shallow_body_passes_and_a_deep_one_does_not() -> None:
    assert not nesting_depth_exceeds(b"[" + b",".join([b"[1]"] * 100_000) + b"]")
    assert nesting_depth_exceeds(b"[" * 101 + b"]" * 101)
    assert not nesting_depth_exceeds(b"[" * 100 + b"]" * 100)


@pytest.mark.parametrize(
    ("body", "kind"),
    [(b'{"a": "\xff"}', "invalid-utf-8"), (b"\xef\xbb\xbf\xc3", "invalid-utf-8"), (b"[" * 1000, "json-too-deep")],
)
def test__check_names_the_problem(body: bytes, kind: str) -> None:
    with pytest.raises(BodyRejectedError) as caught:
        check_json_body(body)
    assert caught.value.kind == kind


def test__valid_utf8_passes() -> None:
    check_json_body('{"name": "ключ 😀"}'.encode())


def _prefix_depth(brackets: bytes) -> int:
    depth = deepest = 0
    for byte in brackets:
        depth += 1 if byte in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


def test__malformed_bracket_soup_never_passes_more_than_twice_the_limit() -> None:
    """Whatever the scan says about malformed input, it never lets a decoder see more than 2 * limit levels."""
    rng = random.Random(7)
    for _ in range(3_000):
        soup = bytes(rng.choice(b"[]{}[[{") for _ in range(rng.randint(1, 60)))
        if not nesting_depth_exceeds(soup, 4):
            assert _prefix_depth(soup) <= 8, soup


@pytest.mark.parametrize(
    "body",
    [b'["\\\\", [[[]]]]', b'["\\"]]]]]]", [[[[[]]]]]]', b'["\\\\\\"[[[[[[["]'],
    ids=["escaped-backslash-ends-string", "escaped-quote-inside", "backslash-then-escaped-quote"],
)
def test__escapes_are_read_as_json_reads_them(body: bytes) -> None:
    assert nesting_depth_exceeds(body, 4) == (_depth(json.loads(body)) > 4)
