"""The request's tenant: its key and a facade locked to the key's namespace.

Routes reach data only through :class:`Tenant`, whose memory view refuses any other namespace,
so no route can forget the scope.

Store work runs off the event loop in one hop per request (:func:`one_hop`): the key lookup,
the rate check and the route's body run together in one call on the app's store executor,
instead of a thread-pool hop for each sync dependency, the endpoint and its response
validation.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import inspect
import threading
import typing
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import Depends, Request

from ..memory import Memory
from ..sessions import Session
from ..types import ApiKey, Quota
from .auth import KeyRing, Principal
from .errors import ApiError
from .quotas import Limiter

if TYPE_CHECKING:
    from .managers import Managers


STORE_THREADS = 32
"""Threads of the app's store executor: requests doing store work at once (more wait)."""


RECALL_THREADS = 2
"""Recalls that call no model running at once on a store that searches in this process
(SQLite); more wait their turn. Such a recall is Python between SQLite calls, and the sqlite3
module releases the GIL around every call and every row fetched: with more threads waiting
for the GIL, each release wakes one of them for nothing, and the event loop waits behind
them. Two at a time let one recall's SQLite work (without the GIL) overlap another's Python;
eight at once cost 1.5x their CPU and answered fewer requests (issue 14; bench server, 8
clients: ~600 context switches per recall instead of ~45); one at a time answered 155-159
recalls/s against 187-196 with two (two paired runs, 100k memories)."""


def store_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="engramdb-store")


class Turns:
    """At most ``n`` holders at once (a context manager), served in the order they came: a
    freed turn is handed to the longest waiter. (A :class:`threading.Semaphore` lets a thread
    that just arrived take a freed turn ahead of those already waiting, so under load a few
    requests waited many turns and set the tail latency.)"""

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"turns must be at least 1, got {n}")
        self._lock = threading.Lock()
        self._free = n
        self._waiting: collections.deque[threading.Lock] = collections.deque()

    @property
    def waiting(self) -> int:
        """Threads waiting for a turn."""
        return len(self._waiting)

    def __enter__(self) -> Turns:
        with self._lock:
            if self._free:
                self._free -= 1
                return self
            gate = threading.Lock()
            gate.acquire()
            self._waiting.append(gate)
        gate.acquire()  # released by the holder that hands its turn over
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._free += 1


def recall_turns(memory: Memory) -> Turns | None:
    """The turns of :data:`RECALL_THREADS` for the app's store (``None``: no turns, every
    read is a round trip to a database server that runs them side by side)."""
    return Turns(RECALL_THREADS) if memory.store.inline_reads else None


@dataclass(frozen=True)
class Services:
    """What the app holds: the shared facade over the store, keys and limits, the
    server-run memory managers (``None`` unless ``extract_sessions`` is on), and the executor
    that runs each request's store work (:func:`one_hop`)."""

    memory: Memory
    keys: KeyRing
    limiter: Limiter
    managers: Managers | None = None
    executor: ThreadPoolExecutor = field(default_factory=store_executor)
    recall_turns: Turns | None = None
    """See :func:`recall_turns`."""


@dataclass(frozen=True)
class Tenant:
    key: ApiKey
    memory: Memory
    limiter: Limiter
    ancestors: tuple[ApiKey, ...] = ()
    """The keys this key was created from (their per-key limits bound it too)."""
    managers: Managers | None = None
    """The server-run memory managers (``extract_sessions``), if on."""
    recall_turns: Turns | None = None
    """See :func:`recall_turns`."""

    @property
    def namespace(self) -> str:
        return self.key.namespace

    @property
    def quota(self) -> Quota:
        """The stored-data limits the facade's writes are checked against."""
        return self.limiter.quota(self.key)

    def session(self, session_id: str) -> Session:
        return Session(session_id, self.memory.store, namespace=self.namespace)

    def recall_turn(self, mode: str) -> AbstractContextManager[object]:
        """Held while a recall in ``mode`` runs: one of the app's :data:`RECALL_THREADS`
        turns if it calls no model (a model call would wait with the turn held and keep
        concurrent queries from sharing a batch), else nothing."""
        memory = self.memory
        model = memory.reranker is not None or (mode != "text" and memory.embedder is not None)
        if self.recall_turns is None or model:
            return contextlib.nullcontext()
        return self.recall_turns

    def items_stored(self, session_id: str, items: list[dict[str, object]]) -> None:
        """Tell the server-run manager (if any) that ``items`` were stored in the session."""
        if self.managers is not None:
            self.managers.notify(self.namespace, self.quota, session_id, items)


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def principal(request: Request) -> Principal:
    """The authenticated caller (the idempotency layer may have authenticated already)."""
    found: Principal | None = getattr(request.state, "principal", None)
    if found is None:
        found = services(request).keys.authenticate(request.headers)
        request.state.principal = found
    return found


def tenant(request: Request) -> Tenant:
    return tenant_for(services(request), principal(request))


def tenant_for(svc: Services, who: Principal) -> Tenant:
    """The tenant of an authenticated caller (the API's and the web page's), after its
    request-rate limit; admins get 403: they have no namespace data."""
    if who.key is None:
        # admin keys manage keys and namespaces only: no data route, no statistics
        raise ApiError(
            403, "forbidden", "admin keys manage keys only; use a namespace key for data"
        )
    svc.limiter.check_rate(who.key, who.ancestors)
    return Tenant(
        who.key,
        svc.memory.scoped(who.key.namespace),
        svc.limiter,
        who.ancestors,
        svc.managers,
        svc.recall_turns,
    )


TenantDep = Annotated[Tenant, Depends(tenant)]
PrincipalDep = Annotated[Principal, Depends(principal)]
ServicesDep = Annotated[Services, Depends(services)]


T = TypeVar("T")


async def blocking(request: Request, func: Callable[[], T]) -> T:
    """Run ``func`` (blocking store work) on the app's store executor, in the caller's
    context; the event loop serves other requests meanwhile."""
    return await blocking_on(services(request), func)


async def blocking_on(svc: Services, func: Callable[[], T]) -> T:
    """:func:`blocking` given the app's services."""
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(svc.executor, context.run, func)


_RESOLVED: dict[Any, Callable[[Request], Any]] = {
    TenantDep: tenant,
    PrincipalDep: principal,
    ServicesDep: services,
}
_REQUEST = "engramdb_request"


def one_hop(endpoint: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """A sync route made async, running in one hop: its ``TenantDep``, ``PrincipalDep`` and
    ``ServicesDep`` parameters are resolved (key lookup, rate check) and its body runs, all in
    one call of :func:`blocking`. FastAPI still parses and validates the other parameters
    (path, query, body) on the event loop, and sees the route's own name, docstring and
    return type (so the OpenAPI schema is the same)."""
    hints = typing.get_type_hints(endpoint, include_extras=True)
    signature = inspect.signature(endpoint)
    lazy: dict[str, Callable[[Request], Any]] = {}
    params: list[inspect.Parameter] = []
    request_name = None
    for name, param in signature.parameters.items():
        hint = hints.get(name, param.annotation)
        resolve = next((r for dep, r in _RESOLVED.items() if hint == dep), None)
        if resolve is not None:
            lazy[name] = resolve
            continue
        if hint is Request:
            request_name = name
        params.append(param.replace(annotation=hint))
    if request_name is None:
        request_name = _REQUEST
        params.insert(
            0, inspect.Parameter(_REQUEST, inspect.Parameter.KEYWORD_ONLY, annotation=Request)
        )
    own_request = request_name != _REQUEST

    async def route(**kwargs: Any) -> T:
        request: Request = kwargs[request_name] if own_request else kwargs.pop(request_name)

        def work() -> T:
            for name, resolve in lazy.items():
                kwargs[name] = resolve(request)
            return endpoint(**kwargs)

        return await blocking(request, work)

    async def authorize(request: Request) -> None:
        """Resolve the key parameters alone (401, 403, 429 as the route would answer)."""
        if lazy:
            await blocking(request, lambda: [resolve(request) for resolve in lazy.values()])

    kinds = sorted(params, key=lambda p: p.kind)  # keyword-only may follow the rest
    route.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=kinds, return_annotation=hints.get("return", signature.return_annotation)
    )
    for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(route, attr, getattr(endpoint, attr))
    route.authorize = authorize  # type: ignore[attr-defined]  # errors.py: before a 422
    return route
