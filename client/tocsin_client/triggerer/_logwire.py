"""Log conversion: the runners' ``LogLine`` frames become ``shipTriggerLogs`` batches on the wire.

Python's level names map to the contract's lower-case levels (an unknown or custom level travels as ``info``);
the logger's name rides in ``extra``, where the server keeps what the contract does not name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final
from uuid import UUID

from tocsin_client.generated.models import Level, TriggerLogBatch
from tocsin_client.generated.models import TriggerLogLine as WireLine

if TYPE_CHECKING:
    from tocsin_client._client import AsyncClient
    from tocsin_client.triggerer._frames import LogLine

__all__ = ["log_sender", "to_wire"]

_LEVELS: Final = {level.name.upper(): level for level in Level}


def to_wire(line: LogLine) -> WireLine:
    """One runner log line as the contract has it."""
    return WireLine(
        trigger_id=line.trigger_id,
        timestamp=datetime.fromtimestamp(line.created, UTC),
        level=_LEVELS.get(line.level, Level.info),
        event=line.message,
        task_instance_id=UUID(line.task_instance_id) if line.task_instance_id else None,
        try_number=line.try_number,
        extra={"logger": line.logger},
    )


def log_sender(client: AsyncClient) -> Callable[[list[LogLine], int], Awaitable[None]]:
    """The ``LogShipper``'s ``send``: one batch (and the count dropped since the last one) per call."""

    async def send(lines: list[LogLine], dropped: int) -> None:
        await client.ship_trigger_logs(TriggerLogBatch(lines=[to_wire(line) for line in lines], dropped=dropped))

    return send
