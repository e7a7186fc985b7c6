"""Application factory for ``engramdb serve``."""

from __future__ import annotations

import asyncio
import copy
import ctypes
import gc
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .. import __version__
from ..errors import InvalidInputError, StoreError
from ..llm import resolve_llm
from ..memory import Memory
from ..store import Store, open_store
from .auth import KeyRing
from .errors import ERROR_RESPONSES, install_error_handlers
from .middleware import AccessLog, BodyLimit, Idempotency, Message, Receive, Scope, Send
from .models import ErrorDetail, HealthOut
from .quotas import Limiter, TokenBuckets
from .settings import ServerSettings
from .tenant import Services, blocking, blocking_on, recall_turns

SETTINGS_ENV = "ENGRAMDB_SERVER_SETTINGS"
"""How ``engramdb serve`` hands resolved settings to its worker processes."""

log = logging.getLogger("engramdb.server")


class RawSessionPath:
    """Route ``/v1/sessions/...`` on the raw (still percent-encoded) path, so a session id may
    contain ``/`` (sent as ``%2F``); the routes decode the id."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if raw and raw.startswith(b"/v1/sessions/"):
            try:
                scope = {**scope, "path": raw.decode("utf-8")}
            except UnicodeDecodeError:
                from .middleware import send_error

                await send_error(send, 400, "invalid_input", "the path is not valid UTF-8")
                return
        await self.app(scope, receive, send)


def create_app(
    store: Store | None = None,
    settings: ServerSettings | None = None,
    *,
    memory: Memory | None = None,
    freeze_gc: bool = False,
) -> FastAPI:
    """Build the ASGI app. With no store, the settings' ``store`` is opened on startup and
    closed on shutdown; a given store (or memory) stays the caller's to close. ``freeze_gc``
    (``engramdb serve``: the process is the app's alone) moves everything alive once the app
    has started out of the garbage collector's reach (:func:`gc.freeze`) until it stops."""
    settings = settings or ServerSettings()
    owned = memory is None and store is None

    mcp = McpMount()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services: Services = app.state.services
        if schedule is not None:
            schedule.start()
        flusher = asyncio.create_task(flush_recall_counts(services))
        try:
            async with mcp.running(services):
                if freeze_gc:
                    # a full collection walks every object alive: the app's own ~100k (the
                    # modules, routes and models, never garbage) cost ~60-90 ms per pass,
                    # a pause every few thousand requests that lands on the tail latency
                    # of those in flight (issue 14); frozen, a full pass is under 1 ms (what is
                    # garbage already is collected first, not kept for good)
                    gc.collect()
                    gc.freeze()
                yield
        finally:
            if freeze_gc:
                gc.unfreeze()
            flusher.cancel()
            if schedule is not None:
                await asyncio.to_thread(schedule.stop, settings.graceful_timeout)
            if services.managers is not None:  # flush: what was said gets extracted
                await asyncio.to_thread(services.managers.close, settings.graceful_timeout)
            # recalls counted in memory reach the store before it closes (if it can take them)
            try:
                await asyncio.to_thread(services.limiter.counts.flush)
            except Exception:
                log.exception("the recall counts kept in memory could not be written")
            if batcher is not None:  # the embeddings already waiting are made, then it stops
                await asyncio.to_thread(batcher.close, settings.graceful_timeout)
            if owned:
                services.memory.close()

    if memory is None:
        memory = Memory(
            store if store is not None else open_store(settings.store),
            embedder=settings.embedder,
            llm=settings.llm,
            settings=settings.recall_settings,
            index_metadata=settings.index_metadata,
            index_neighbors=settings.index_neighbors,
        )
    else:  # the caller's facade keeps its own limits (and model, unless one is set)
        memory = copy.copy(memory)
        if settings.llm is not None:
            memory.llm = resolve_llm(settings.llm)
    batcher = None
    if settings.embed_batching and memory.embedder is not None:
        # concurrent requests' texts go to the model together (every request's memory view
        # is a copy of this facade, so they all share this batcher)
        from ..embed.batching import EmbedBatcher

        inner = memory.embedder
        if isinstance(inner, EmbedBatcher):  # a facade from another app: batch its model once
            inner = inner.inner
        batcher = EmbedBatcher(inner, max_wait=settings.embed_batch_ms / 1000)
        memory.embedder = batcher
    memory.max_content_chars = settings.max_content_chars
    memory.max_query_chars = settings.max_query_chars
    keys = KeyRing(memory.store, settings.admin_keys)
    app = FastAPI(
        title="engramdb",
        version=__version__,
        summary="Persistent memory for AI agents: sessions, memories, knowledge triples.",
        lifespan=lifespan,
        docs_url=None,  # served by install_ui from the package's assets (works offline)
        redoc_url=None,
    )
    app.state.settings = settings
    managers = None
    if settings.extract_sessions:
        if memory.llm is None:
            raise InvalidInputError("setting extract_sessions: needs an llm (ENGRAMDB_LLM)")
        from .managers import Managers

        managers = Managers(
            memory,
            every_n_turns=settings.extract_every_turns,
            idle_seconds=settings.extract_idle_seconds,
            flush_at_exit=settings.graceful_timeout,
        )
    schedule = None
    if settings.consolidate_every_seconds is not None:
        if memory.llm is None:
            raise InvalidInputError(
                "setting consolidate_every_seconds: needs an llm (ENGRAMDB_LLM)"
            )
        from .schedule import ConsolidationSchedule

        schedule = ConsolidationSchedule(
            memory,
            every_seconds=settings.consolidate_every_seconds,
            caps=settings.consolidate_caps,
            root=Path(settings.memory_root) if settings.memory_root else None,
            idle_seconds=settings.consolidate_idle_seconds,
        )
    app.state.services = Services(
        memory,
        keys,
        Limiter(memory.store, settings.quotas),
        managers,
        recall_turns=recall_turns(memory),
    )
    app.state.registrations = TokenBuckets()  # open registrations per client address
    install_error_handlers(app)

    from . import compat, consolidation, transfer, v1

    app.include_router(v1.router)
    app.include_router(consolidation.router)
    app.include_router(transfer.router)
    app.include_router(compat.router)
    from .ui import install_ui

    install_ui(app)  # the web page (/ui/), offline /docs and /redoc
    # MCP over streamable HTTP (engramdb.integrations.mcp), authenticated by the same keys
    app.add_route("/mcp", cast(Any, mcp), include_in_schema=False)  # a raw ASGI endpoint

    backend = memory.store.url.split(":", 1)[0]

    @app.get(
        "/health",
        response_model=HealthOut,
        response_model_exclude_none=True,
        tags=["health"],
        responses={
            405: ERROR_RESPONSES[405],
            503: {"model": HealthOut, "description": "The store cannot serve requests."},
        },
    )
    async def health(request: Request) -> HealthOut | JSONResponse:
        """Whether the server can serve requests (its store answers; a SQLite database file is
        still the one it opened) and the backend in use; needs no key. 503 when unhealthy."""
        return await blocking(request, lambda: _health(memory, backend))

    # outermost first: logs see everything, the size limit guards the idempotency buffer
    app.add_middleware(Idempotency, store=memory.store, keys=keys)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RawSessionPath)
    app.add_middleware(AccessLog)
    return app


async def flush_recall_counts(services: Services) -> None:
    """Write the recall counts kept in memory (:class:`~.quotas.RecallCounts`) once they
    have waited their time, until cancelled; a failed write is retried at the next round."""
    counts = services.limiter.counts
    while True:
        await asyncio.sleep(counts.after / 2)
        if counts.due():  # a failed write is logged and kept (flush(wait=False) never raises)
            await blocking_on(services, lambda: counts.flush(wait=False))


class McpMount:
    """The ``/mcp`` route: the MCP endpoint, built (and the ``mcp`` SDK imported) when the app
    starts, so apps that never start pay nothing; 404 without the ``mcp`` extra."""

    def __init__(self) -> None:
        self.endpoint: Any = None
        self.missing: str | None = None

    @asynccontextmanager
    async def running(self, services: Services) -> AsyncIterator[None]:
        try:
            from ..integrations.mcp import McpEndpoint, require_mcp

            require_mcp()
        except InvalidInputError as exc:
            self.missing = str(exc)
            yield
            return
        endpoint = McpEndpoint(services.memory, services.keys, services.limiter)
        async with endpoint.lifespan():
            self.endpoint = endpoint
            try:
                yield
            finally:
                self.endpoint = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from .middleware import send_error

        if self.endpoint is None:
            status, message = (
                (404, self.missing) if self.missing else (503, "the MCP endpoint is not running")
            )
            await send_error(send, status, "not_found" if self.missing else "unavailable", message)
            return
        await self.endpoint(scope, receive, send)


def _health(memory: Memory, backend: str) -> HealthOut | JSONResponse:
    try:
        memory.ping()
    except StoreError as exc:
        log.error("health check failed: %s", exc)
        body = HealthOut(
            status="unhealthy",
            version=__version__,
            store=backend,
            # the detail (a file path, a host) goes to the log only, as for every 5xx body
            error=ErrorDetail(
                code="store_unavailable", message="the store is unavailable; see the server log"
            ),
        )
        return JSONResponse(body.model_dump(), status_code=503)
    return HealthOut(status="healthy", version=__version__, store=backend)


def app_from_environment() -> FastAPI:
    """The factory uvicorn's workers call: settings come from ``$ENGRAMDB_SERVER_SETTINGS``."""
    raw = os.environ.get(SETTINGS_ENV)
    settings = ServerSettings.model_validate(json.loads(raw)) if raw else ServerSettings()
    exit_with_parent()
    return create_app(settings=settings, freeze_gc=True)


_PR_SET_PDEATHSIG = 1


def exit_with_parent(poll: float = 1.0) -> None:
    """In a worker process (``engramdb serve --workers N``), shut down gracefully when the
    supervisor dies, even by SIGKILL, instead of living on as an orphan that keeps the port.

    The worker sends itself SIGTERM, which uvicorn turns into a graceful shutdown. On Linux
    the kernel sends it (``prctl(PR_SET_PDEATHSIG)``); everywhere, a thread also compares
    ``os.getppid()`` with the supervisor's pid every ``poll`` seconds. Does nothing in a
    process that multiprocessing did not start (``engramdb serve`` with one worker)."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.pid is None:
        return
    parent_pid = parent.pid
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
                log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        except (OSError, AttributeError) as exc:  # no libc prctl: the thread below suffices
            log.warning("prctl(PR_SET_PDEATHSIG) unavailable: %s", exc)

    def watch() -> None:
        # also covers a parent that died before prctl above took effect
        while os.getppid() == parent_pid:
            time.sleep(poll)
        log.warning("the supervisor (pid %d) is gone; this worker shuts down", parent_pid)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="engramdb-parent-watch", daemon=True).start()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any structured extras."""

    _STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: v for k, v in record.__dict__.items() if k not in self._STANDARD})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def log_config(settings: ServerSettings) -> dict[str, Any]:
    """logging.dictConfig for uvicorn and engramdb, JSON lines or plain text."""
    formatter = (
        {"()": f"{__name__}.JsonFormatter"}
        if settings.log_format == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    )
    level = settings.log_level.upper()
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "default",
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "loggers": {
            "engramdb": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


__all__ = ["Message", "app_from_environment", "create_app", "exit_with_parent", "log_config"]
