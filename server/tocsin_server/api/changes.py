"""The watch feed (2027-01-01): task-instance changes as a long-polled page or an SSE / NDJSON stream."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Final, cast

import msgspec
from litestar import Request, Response, Router, get
from litestar.datastructures import State
from litestar.exceptions import TooManyRequestsException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIResponse, Operation
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import Stream
from litestar.response.base import ASGIResponse

from tocsin_server.api._common import (
    AUTHED,
    MAX_ID,
    RUNTIME_WRITE,
    DagIdFilter,
    Limit,
    RunIdFilter,
    problems,
    strict_query,
)
from tocsin_server.generated.models import (
    ChangeBookmark,
    HistoryExpiredProblem,
    TaskInstanceChange,
    TaskInstanceChangePage,
    TaskInstanceChangeReason,
    TaskInstanceStateName,
)
from tocsin_server.services import change_feed
from tocsin_server.services.change_feed import MAX_WAIT_S, Bookmark, Filters
from tocsin_server.services.change_notices import ChangeNotices
from tocsin_server.services.changes import Change

_log = logging.getLogger("tocsin.server")

JSON: Final = "application/json"
SSE: Final = "text/event-stream"
NDJSON: Final = "application/x-ndjson"
RETRY_AFTER_S: Final = 1
_ENCODER: Final = msgspec.json.Encoder()
_STREAM_KEYS: Final = ("x-sse", "x-ndjson")
"""Placeholder response keys carrying the stream media types' schemas to ``_StreamsInOneResponse``."""


class StreamSlots:
    """The watch streams one process holds open, at most ``limit`` (the next one is a 429)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def take(self) -> Callable[[], None]:
        if self.open >= self.limit:
            msg = f"this server holds {self.limit} watch streams already (TOCSIN_WATCH_MAX_STREAMS); retry later"
            raise TooManyRequestsException(msg, headers={"Retry-After": str(RETRY_AFTER_S)})
        self.open += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.open -= 1

        return release


class _StreamsInOneResponse(Operation):
    """Litestar documents one media type per status; the feed's 200 has three (the page and two streams)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        responses = self.responses or {}
        success = responses["200"]
        for key in _STREAM_KEYS:
            extra = responses.pop(key)
            assert isinstance(success, OpenAPIResponse) and isinstance(extra, OpenAPIResponse)
            success.content = {**(success.content or {}), **(extra.content or {})}


class _HeldStream(Stream):
    """A stream that gives its slot back however it ends (finished, client gone, server closing)."""

    def __init__(self, *args: Any, release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._release = release

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> ASGIResponse:
        inner = super().to_asgi_response(*args, **kwargs)
        release = self._release

        async def held(scope: Any, receive: Any, send: Any) -> None:
            try:
                await inner(scope, receive, send)
            finally:
                release()

        return cast("ASGIResponse", held)


def _wire(item: Change | Bookmark) -> TaskInstanceChange | ChangeBookmark:
    if isinstance(item, Bookmark):
        return ChangeBookmark(version=item.version)
    return TaskInstanceChange(
        version=item.version,
        task_instance_id=item.task_instance_id,
        dag_id=item.dag_id,
        run_id=item.run_id,
        task_id=item.task_id,
        map_index=item.map_index,
        try_number=item.try_number,
        previous_state=TaskInstanceStateName(item.previous_state),
        state=TaskInstanceStateName(item.state),
        reason=TaskInstanceChangeReason(item.reason),
        changed_at=item.changed_at,
    )


def _sse(item: TaskInstanceChange | ChangeBookmark) -> bytes:
    kind = "bookmark" if isinstance(item, ChangeBookmark) else "change"
    return b"event: %s\nid: %d\ndata: %s\n\n" % (kind.encode(), item.version, _ENCODER.encode(item))


def _ndjson(item: TaskInstanceChange | ChangeBookmark) -> bytes:
    return _ENCODER.encode(item) + b"\n"


async def _encoded(items: AsyncIterator[Change | Bookmark], encode: Callable[[Any], bytes]) -> AsyncIterator[bytes]:
    try:
        async for item in items:
            yield encode(_wire(item))
    except Exception as exc:  # noqa: BLE001 - the answer has started: end it, the watcher resumes
        _log.warning("watch stream ended by an error: %s", exc)


def _start_after(after: int | None, last_event_id: str | None) -> int | None:
    if after is not None:
        return after
    if last_event_id is None:
        return None
    return int(last_event_id)  # the pattern allows 1-15 digits only: never above MAX_ID


@get(
    "/api/v1/task-instances/changes",
    operation_id="watchTaskInstanceChanges",
    tags=["worker", "admin"],
    opt=RUNTIME_WRITE,
    guards=[strict_query("after", "dag_id", "run_id", "state", "wait", "limit")],
    operation_class=_StreamsInOneResponse,
    responses={
        **problems(*AUTHED, 429),
        410: ResponseSpec(
            data_container=HistoryExpiredProblem,
            media_type="application/problem+json",
            description="The version asked for is older than the retained history.",
            generate_examples=False,
        ),
        **cast(
            "dict[int, ResponseSpec]",
            {
                "x-sse": ResponseSpec(data_container=str, media_type=SSE, description="", generate_examples=False),
                "x-ndjson": ResponseSpec(
                    data_container=cast("type[Any]", TaskInstanceChange | ChangeBookmark),
                    media_type=NDJSON,
                    description="",
                    generate_examples=False,
                ),
            },
        ),
    },
)
async def watch_task_instance_changes(
    request: Request[Any, Any, Any],
    state: State,
    after: Annotated[int | None, QueryParameter(ge=0, le=MAX_ID)] = None,
    last_event_id: Annotated[
        str | None, HeaderParameter(name="Last-Event-ID", pattern="^[0-9]{1,15}$", max_length=15)
    ] = None,
    dag_id: DagIdFilter = None,
    run_id: RunIdFilter = None,
    ti_state: Annotated[TaskInstanceStateName | None, QueryParameter(name="state")] = None,
    wait: Annotated[float, QueryParameter(ge=0)] = 0,
    limit: Limit = 100,
) -> Response[TaskInstanceChangePage]:
    if math.isnan(wait):
        msg = "wait must be a number of seconds"
        raise ValidationException(msg, extra=[{"key": "wait", "message": msg, "source": "query"}])
    notices: ChangeNotices = state.change_notices
    filters = Filters(dag_id=dag_id, run_id=run_id, state=None if ti_state is None else ti_state.value)
    start = _start_after(after, last_event_id)
    media_type = request.accept.best_match([JSON, SSE, NDJSON], default=JSON)
    if media_type == JSON:
        wait_s = min(wait, MAX_WAIT_S)
        start = await change_feed.latest_version(state.reads) if start is None else start
        page = await change_feed.long_poll(state.reads, notices, start, limit, filters, wait_s)
        changes = [cast("TaskInstanceChange", _wire(change)) for change in page.changes]
        return Response(TaskInstanceChangePage(changes=changes, version=page.version, wait_s=wait_s))
    slots: StreamSlots = state.watch_streams
    release = slots.take()
    try:
        if start is None:
            start = await change_feed.latest_version(state.reads)
        else:
            await change_feed.check_history(state.reads, start)  # a 410 before the stream starts
    except BaseException:
        release()
        raise
    items = change_feed.stream(state.reads, notices, start, filters, state.settings.watch_bookmark_s)
    body = _encoded(items, _sse if media_type == SSE else _ndjson)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return cast(
        "Response[TaskInstanceChangePage]", _HeldStream(body, media_type=media_type, headers=headers, release=release)
    )


router = Router("/", route_handlers=[watch_task_instance_changes])
