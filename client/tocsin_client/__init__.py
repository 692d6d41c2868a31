"""The tocsin client: typed calls to the API server, serde, and the trigger authoring kit.

Implementation modules are private (``_client``); the public names are re-exported here.
"""

from __future__ import annotations

from tocsin_client._client import AsyncClient, Client
from tocsin_client._defer import deferral
from tocsin_client._watch import AsyncWatch, Backoff, Watch
from tocsin_client.errors import (
    APIError,
    BadRequestError,
    ConflictError,
    DecodeError,
    ForbiddenError,
    HistoryExpiredError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    ServerError,
    TocsinError,
    TransportError,
    UnauthorizedError,
    ValidationError,
    is_transient,
)
from tocsin_client.generated.operations import API_VERSION

__all__ = [
    "API_VERSION",
    "APIError",
    "AsyncClient",
    "AsyncWatch",
    "Backoff",
    "BadRequestError",
    "Client",
    "ConflictError",
    "DecodeError",
    "ForbiddenError",
    "HistoryExpiredError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "ServerError",
    "TocsinError",
    "TransportError",
    "UnauthorizedError",
    "ValidationError",
    "Watch",
    "deferral",
    "is_transient",
]
