"""Operations that are in the contract but not built yet answer 501 problem+json."""

from __future__ import annotations

from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_501_NOT_IMPLEMENTED


def not_implemented(operation_id: str) -> HTTPException:
    return HTTPException(
        status_code=HTTP_501_NOT_IMPLEMENTED,
        detail=f"{operation_id} is part of API version 2026-11-01 but not implemented by this server yet",
    )
