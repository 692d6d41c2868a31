"""Query parameters against the contract: the ones an operation declares, refusing the others, hiding new ones.

From 2027-01-01 on (``UnknownQueryParametersRefused`` in ``VERSION_CHANGES``) a query parameter that the
operation does not declare in the requested version's file is a 400 naming it, for every operation at once:
the version middleware checks before any handler runs. Names are compared decoded; values are never read here.
"""

from __future__ import annotations

import functools
from urllib.parse import unquote_plus

from litestar.exceptions import ValidationException

from tocsin_server.web.spec import load_spec


@functools.cache
def declared_query_parameters(version: str) -> dict[str, frozenset[str]]:
    """operationId → the query parameters its operation declares in ``version``'s file (the contract)."""
    document = load_spec(version)
    shared = document.get("components", {}).get("parameters", {})
    declared: dict[str, frozenset[str]] = {}
    for item in document["paths"].values():
        for operation in item.values():
            if not isinstance(operation, dict) or "operationId" not in operation:
                continue
            parameters = [
                shared[p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p for p in operation.get("parameters", [])
            ]
            declared[operation["operationId"]] = frozenset(p["name"] for p in parameters if p["in"] == "query")
    return declared


def _query_names(query_string: bytes) -> list[tuple[str, bytes]]:
    """Each ``name=value`` pair of a raw query string with its decoded name, the pair kept as it came."""
    pairs = [pair for pair in query_string.split(b"&") if pair]
    return [(unquote_plus(pair.split(b"=", 1)[0].decode("latin-1")), pair) for pair in pairs]


def refuse_unknown_query(query_string: bytes, declared: frozenset[str]) -> None:
    """A 400 naming every parameter of ``query_string`` that is not in ``declared`` (repeated names once)."""
    unknown = sorted({name for name, _ in _query_names(query_string) if name not in declared})
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        known = ", ".join(sorted(declared)) or "none"
        msg = f"unknown query parameter{'s' if len(unknown) > 1 else ''} {names} (this operation takes: {known})"
        raise ValidationException(
            msg,
            extra=[
                {"key": name, "message": "not a parameter of this operation", "source": "query"} for name in unknown
            ],
        )


def without_query_parameters(query_string: bytes, names: set[str]) -> bytes:
    """``query_string`` without the pairs named ``names``; every other pair byte for byte as it came."""
    return b"&".join(pair for name, pair in _query_names(query_string) if name not in names)
