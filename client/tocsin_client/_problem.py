"""Tolerant parsing of RFC 9457 problem bodies: an error must never hide behind a second error."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import msgspec

from tocsin_client.generated.models import FieldError, HistoryExpiredProblem, Problem

_DECODER = msgspec.json.Decoder(Problem)
# Problems that carry members of their own, by type: decoded as their subclass so the members survive.
_EXTENDED: dict[str, msgspec.json.Decoder[Any]] = {
    "urn:tocsin:problem:history-expired": msgspec.json.Decoder(HistoryExpiredProblem),
}
_MAX_DETAIL = 2000  # a proxy's HTML error page is not worth carrying whole


def parse_problem(status: int, content: bytes) -> Problem:
    """The problem in ``content``, or one built from whatever the body holds (a proxy page, nothing)."""
    try:
        problem = _DECODER.decode(content)
    except msgspec.DecodeError:
        pass
    else:
        return _extended(problem, content)
    try:
        data = msgspec.json.decode(content)
    except msgspec.DecodeError:
        data = None
    if isinstance(data, dict):
        return _from_mapping(status, data)
    text = content.decode("utf-8", "replace").strip()[:_MAX_DETAIL]
    return Problem(type="about:blank", title=_phrase(status), status=status, detail=text or msgspec.UNSET)


def _extended(problem: Problem, content: bytes) -> Problem:
    """``problem`` as its own subclass when its type has one and the body fits it; else as it is."""
    decoder = _EXTENDED.get(problem.type)
    if decoder is None:
        return problem
    try:
        extended: Problem = decoder.decode(content)
    except msgspec.DecodeError:
        return problem
    return extended


def _from_mapping(status: int, data: dict[str, Any]) -> Problem:
    """Keep the members that have the right shape, drop the rest."""
    detail = data.get("detail")
    instance = data.get("instance")
    return Problem(
        type=_str(data.get("type"), "about:blank"),
        title=_str(data.get("title"), _phrase(status)),
        status=status,
        detail=detail if isinstance(detail, str) else msgspec.UNSET,
        instance=instance if isinstance(instance, str) else msgspec.UNSET,
        errors=_field_errors(data.get("errors")),
    )


def _field_errors(raw: object) -> list[FieldError] | msgspec.UnsetType:
    try:
        return msgspec.convert(raw, list[FieldError])
    except msgspec.ValidationError:
        return msgspec.UNSET


def _str(value: object, default: str) -> str:
    return value if isinstance(value, str) else default


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
