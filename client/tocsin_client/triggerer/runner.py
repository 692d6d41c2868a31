"""A runner process: one uvloop event loop running thousands of trigger coroutines for its supervisor.

Started by the supervisor as ``python -m tocsin_client.triggerer.runner --fd N ...`` with one end of a socket
pair; it obeys only the frames on that socket (terminal signals are ignored, so Ctrl-C reaches the supervisor,
which stops the runners in order). When the socket closes the supervisor is gone, and the runner exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import msgspec
from tocsin_wire.logs import bind_process, configure_logging, load_log_settings

from tocsin_client.triggerer._frames import (
    Bye,
    Cancel,
    Hello,
    Job,
    LogLine,
    Shutdown,
    Start,
    Tick,
    TokenGrant,
    TokenRequest,
    ToRunner,
    encode,
    read_frame,
)
from tocsin_client.triggerer._heap import GcClock, HeapKeeper
from tocsin_client.triggerer._host import TriggerHost
from tocsin_client.triggerer._reporter import Reporter, TriggerLogHandler
from tocsin_client.triggerer._slices import Slicer
from tocsin_client.triggerer._tokens import TokenBroker, TriggerClient
from tocsin_client.triggerer._watchdog import Block, Watchdog

if TYPE_CHECKING:
    from tocsin_client.generated.models import RunTrigger

__all__ = ["main", "serve"]

PULSE_S: Final = 0.05
TICK_S: Final = 0.5
_log = logging.getLogger("tocsin.triggerer.runner")


def _configure_logging(index: int) -> None:
    """The supervisor's pipeline and variables (validated there); every line names the runner, and a trigger's
    lines its ``trigger_id`` (bound in the trigger's task by the host). INFO and above still reach the handler that
    ships a trigger's lines to the server, whatever level is written here."""
    configure_logging(load_log_settings(os.environ), floor="INFO")
    bind_process(runner=index)


class _Runner:
    def __init__(
        self, host: TriggerHost, reporter: Reporter, writer: asyncio.StreamWriter, watchdog: Watchdog, heap: HeapKeeper
    ) -> None:
        self.host = host
        self.reporter = reporter
        self.writer = writer
        self.watchdog = watchdog
        self.heap = heap
        self.blocks: list[Block] = []  # appended by the watchdog thread, taken by the loop
        self._lag_s = 0.0
        self._max_lag_s = 0.0
        self.closing = False  # stopping every trigger: no thaw (a full collection) for a heap about to go
        # Starts and cancels go in slices of about 10 ms, so the loop keeps turning through a burst of 100,000.
        self.starting = Slicer(after_slice=lambda: heap.settle(len(host), host.ended))
        self.stopping = Slicer()

    async def start(self, workloads: list[RunTrigger]) -> None:
        self.starting.begin()
        for workload in workloads:
            self.host.start(workload)
            await self.starting.done_one()
        await self.starting.pause()

    async def cancel(self, trigger_ids: list[int]) -> None:
        self.stopping.begin()
        for trigger_id in trigger_ids:
            self.host.cancel(trigger_id)
            await self.stopping.done_one()
        await self.stopping.pause()

    def on_block(self, block: Block) -> None:
        self.blocks.append(block)  # list.append is atomic; the loop picks it up on its next pulse

    async def pulse(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            expected = loop.time() + PULSE_S
            await asyncio.sleep(PULSE_S)
            self._lag_s = max(0.0, loop.time() - expected)
            self._max_lag_s = max(self._max_lag_s, self._lag_s)
            self.watchdog.pulse()
            while self.blocks:
                self._report_block(self.blocks.pop(0))
            if loop.time() >= next_tick:
                next_tick = loop.time() + TICK_S
                # A thaw's full collection holds the loop ~0.1 s per 10,000 triggers: not in the middle of a burst
                # of fires (20,000 due at once thawed half-way through), whose events wait on the loop; after it.
                if not self.closing and not self.host.firing:
                    self.heap.check(len(self.host), self.host.ended)
                tick = Tick(len(self.host), self._lag_s, self.watchdog.blocked_total, self._max_lag_s)
                self._max_lag_s = 0.0
                self.writer.write(encode(tick))

    def _report_block(self, block: Block) -> None:
        if block.trigger_id is None:
            return
        message = (
            f"this trigger blocked the event loop for {block.seconds:.2f} s ({block.own_s:.2f} s in its own code) "
            f"at {block.where}"
        )
        self.reporter.log(LogLine(block.trigger_id, None, None, time.time(), "WARNING", _log.name, message))


async def serve(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    api_url: str,
    allowed: tuple[str, ...],
    block_threshold_s: float = 0.2,
) -> None:
    """Run triggers as the frames on ``reader`` say until ``Shutdown`` or the end of the stream."""
    client = TriggerClient(api_url)  # the API version it was generated for, like the supervisor's
    tokens = TokenBroker(lambda trigger_id: writer.write(encode(TokenRequest(trigger_id=trigger_id))))
    client.refresher = tokens.fresh
    reporter = Reporter(writer)
    host = TriggerHost(reporter, client.for_trigger, allowed=allowed)
    logging.getLogger().addHandler(TriggerLogHandler(reporter))
    watchdog = Watchdog(threading.get_ident(), threshold_s=block_threshold_s, gc_clock=GcClock())
    runner = _Runner(host, reporter, writer, watchdog, HeapKeeper())
    watchdog.on_block = runner.on_block
    watchdog.start()
    pulse = asyncio.create_task(runner.pulse())
    writer.write(encode(Hello(pid=os.getpid())))
    decoder: msgspec.msgpack.Decoder[ToRunner] = msgspec.msgpack.Decoder(ToRunner)
    try:
        while (frame := await read_frame(reader, decoder)) is not None:
            if isinstance(frame, Start):
                await runner.start(frame.workloads)
            elif isinstance(frame, Cancel):
                await runner.cancel(frame.trigger_ids)
            elif isinstance(frame, TokenGrant):
                tokens.grant(frame.trigger_id, frame.token)
            elif isinstance(frame, Job):
                bind_process(job_id=frame.job_id)
            elif isinstance(frame, Shutdown):
                runner.closing = True
                await host.stop(frame.timeout_s, runner.stopping)
                reporter.flush()
                writer.write(encode(Bye()))
                await writer.drain()
                return
        _log.warning("the supervisor is gone; stopping")
        runner.closing = True
        await host.stop(1.0, runner.stopping)
    finally:
        pulse.cancel()
        watchdog.stop()
        await client.aclose()
        writer.close()


async def _main(args: argparse.Namespace) -> None:
    sock = socket.socket(fileno=args.fd)
    reader, writer = await asyncio.open_connection(sock=sock, limit=2**20)
    await serve(
        reader,
        writer,
        api_url=args.api_url,
        allowed=tuple(args.allow),
        block_threshold_s=args.block_threshold,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of a runner process."""
    parser = argparse.ArgumentParser(prog="tocsin-runner")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--allow", action="append", default=[])
    parser.add_argument("--block-threshold", type=float, default=0.2)
    args = parser.parse_args(argv)
    # Terminal signals go to the whole process group; only the supervisor decides when a runner stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _configure_logging(args.index)
    try:
        import uvloop  # noqa: PLC0415

        uvloop.run(_main(args))
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
