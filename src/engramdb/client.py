"""Clients of an engramdb server: :class:`Client`, :class:`AsyncClient`, :class:`RemoteSession`.

>>> from engramdb import Client
>>> reg = Client.register("http://127.0.0.1:8765", "my-agent")          # doctest: +SKIP
>>> with Client("http://127.0.0.1:8765", reg.api_key) as mem:           # doctest: +SKIP
...     mem.remember("Ada prefers tea", user_id="ada")
...     hits = mem.recall("what does Ada drink?")

Both clients have the same methods, named like :class:`engramdb.Memory`'s and the sessions';
:class:`AsyncClient`'s are coroutines. One shared core builds every request and parses every
response into engramdb's records (:class:`~engramdb.MemoryRecord`, :class:`~engramdb.Hit`,
:class:`~engramdb.Triple`, ...), so the two faces only differ in how they wait.

Errors are engramdb's exception tree, with the server's message, HTTP ``status`` and ``code``:
400/422 :class:`~engramdb.InvalidInputError`, 401 :class:`~engramdb.AuthenticationError`,
403 :class:`~engramdb.PermissionDeniedError`, 404 :class:`~engramdb.NotFoundError`,
409 :class:`~engramdb.ConflictError` (``lease_held``: :class:`~engramdb.LeaseHeldError`;
``llm_not_configured``: the server has no model for ``add_messages(infer=True)``),
502/503 from the server's model (``llm_bad_response``, ``llm_unavailable``)
:class:`~engramdb.errors.LLMResponseError` / :class:`~engramdb.errors.LLMUnavailableError`,
413 :class:`~engramdb.PayloadTooLargeError`, 429 :class:`~engramdb.RateLimitError` (with
``retry_after``), 503 and an unreachable server :class:`~engramdb.StoreUnavailableError`, a
corrupt stored item :class:`~engramdb.CorruptRecordError`, other 5xx
:class:`~engramdb.ServerError`. Bad input the local API would refuse (session items that are
not JSON objects, a negative limit, an empty session id, ...) is refused before sending, with
the local API's error.

Retries: a call is retried (``retries`` times, exponential back-off with jitter) when the server
could not be reached, answered 429 (after its ``Retry-After``, unless that is longer than
``max_retry_wait``: a daily quota is raised at once), or answered 502/503/504 or timed out --
the last two only for calls that are safe to repeat: reads, deletes, and writes, each of which
is sent with an ``Idempotency-Key`` (one per call, the same on every attempt), so the server
runs it once and replays the first response to a retry. Adding session items or popping one is
never applied twice; neither is ``add_messages`` when the server's model failed (the server
stored the messages before the model was asked, so that error is raised, not retried).
Creating or registering a key is retried only if it was never sent.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import random
import re
import threading
import time
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload
from urllib.parse import quote

import httpx
import orjson

from .errors import (
    AuthenticationError,
    ConflictError,
    CorruptRecordError,
    EngramError,
    InvalidInputError,
    LeaseHeldError,
    LLMResponseError,
    LLMUnavailableError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StoreError,
    StoreUnavailableError,
)
from .filters import Filter, normalize_tags
from .manager.context import Context
from .memory import ForgetResult, Page
from .retrying import parse_retry_after
from .sessions import SessionSettingsLike, coerce_session_settings, resolve_limit
from .types import (
    ApiKey,
    BatchErrors,
    EntryError,
    Hit,
    JSONItem,
    MemoryEvent,
    MemoryRecord,
    MemoryVersion,
    SessionInfo,
    Triple,
    format_datetime,
    parse_datetime,
)
from .validation import check_id, check_limit, check_min_score, encode_items

if TYPE_CHECKING:
    from agents.memory import SessionSettings as SDKSessionSettings

    from .manager.decide import Decision, DecisionEvent
    from .transfer import ImportReport

_T = TypeVar("_T")

Mode = Literal["hybrid", "text", "vector"]
FilterInput = Filter | Mapping[str, Any] | None

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.2
MAX_RETRY_WAIT = 30.0
"""The longest wait between two attempts; a ``Retry-After`` longer than this is not waited for:
the :class:`~engramdb.RateLimitError` is raised at once (a daily quota does not reset soon)."""

RETRY_STATUSES = frozenset({502, 503, 504})

DONE_BEFORE_FAILING = frozenset({"llm_unavailable", "llm_bad_response"})
"""Error codes of requests that did their write before failing (``add_messages`` stored the
messages, then the model failed): never repeated, or the messages would be stored twice."""

try:
    from importlib.metadata import version as _dist_version

    _USER_AGENT = f"engramdb-python/{_dist_version('engramdb')}"
except Exception:  # pragma: no cover - not installed as a distribution
    _USER_AGENT = "engramdb-python"


# -- results that have no record type of their own -------------------------------------------


@dataclass(frozen=True, slots=True)
class Registration:
    """A key from ``POST /api/keys/register``: its secret (shown once) and its new namespace."""

    api_key: str
    key_id: str
    namespace: str
    agent_name: str | None


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A key made with :meth:`Client.create_key`: the secret (shown once) and the key record."""

    api_key: str
    key: ApiKey


@dataclass(frozen=True, slots=True)
class SessionPage:
    """One page of :meth:`Client.list_sessions`; pass ``next_cursor`` back for the next page."""

    items: list[SessionInfo]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ExtractResult:
    """What :meth:`Client.add_messages` (or :meth:`Client.extract`) did on the server: the
    decisions the model made for each candidate memory (``Decision``, as
    :meth:`engramdb.Memory.add_messages` returns them) and the events of those applied
    (empty on a dry run), with the model tokens used."""

    session_id: str
    stored: int
    """Messages stored in the session by this call."""
    dry_run: bool
    decisions: list[Decision]
    applied: list[DecisionEvent]
    tokens: int


# -- the shared core: requests in, records out -----------------------------------------------


@dataclass(frozen=True, slots=True)
class _Call(Generic[_T]):
    """One logical API call: what to send, whether repeating it is safe, how to read the reply."""

    method: str
    path: str
    parse: Callable[[Any], _T]
    params: tuple[tuple[str, str], ...] | None = None
    body: bytes | None = None
    safe: bool = True
    """Repeating it cannot do anything twice (a read, a delete, or a write with an
    ``Idempotency-Key``)."""
    idempotency_key: str | None = None
    on_404: Callable[[], _T] | None = None
    """What a 404 means instead of :class:`NotFoundError` (``session_info``: ``None``)."""
    auth: bool = True


def _write(method: str, path: str, body: bytes | None, parse: Callable[[Any], _T]) -> _Call[_T]:
    """A write, made safe to retry by a fresh ``Idempotency-Key`` (kept across attempts)."""
    return _Call(method, path, parse, body=body, idempotency_key=str(uuid.uuid4()))


def _segment(value: str) -> str:
    """A path segment: every reserved character percent-encoded, and ``.``/``..`` too (an HTTP
    client would otherwise resolve them as dot segments)."""
    encoded = quote(value, safe="")
    if encoded.strip(".") == "":
        encoded = encoded.replace(".", "%2E")
    return encoded


def _json_default(value: object) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, Filter):
        return _filter_dict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _dumps(body: Mapping[str, Any]) -> bytes:
    """A request body as UTF-8 JSON; what JSON cannot carry is refused here, before sending."""
    try:
        text = json.dumps(
            body, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_json_default
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"the request is not JSON-serialisable: {exc}") from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(
            "the request contains text that is not valid Unicode (a lone surrogate)"
        ) from None


_LONG_NUMBER = re.compile(rb"\d{20}")


def _loads(content: bytes) -> Any:
    """Parse JSON exactly. orjson is fast but reads integers beyond 64 bits as floats, so a
    body with a 20-digit run anywhere (rare; harmless inside a string) goes to ``json``."""
    if _LONG_NUMBER.search(content):
        return json.loads(content)
    return orjson.loads(content)


def _iso(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    return format_datetime(value)


def _dt(value: str) -> datetime:
    return parse_datetime("timestamp", value)


def _opt_dt(value: str | None) -> datetime | None:
    return None if value is None else _dt(value)


def _filter_dict(flt: Filter) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(flt):
        value = getattr(flt, f.name)
        if value is None or value == () or value == {}:
            continue
        out[f.name] = list(value) if f.name == "tags" else value
    return out


def _filters(filters: FilterInput) -> dict[str, Any] | None:
    """Filters as the API takes them; validated here so a typo fails like it does locally."""
    if filters is None:
        return None
    return _filter_dict(Filter.parse(filters))


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(f"{name} must be true or false, got {value!r}")
    return value


def _drop_none(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# -- parsing API objects into engramdb records -----------------------------------------------


def parse_memory(d: Mapping[str, Any]) -> MemoryRecord:
    """A memory object of the API as a :class:`MemoryRecord` (:meth:`MemoryRecord.from_dict`)."""
    return MemoryRecord.from_dict(d)


def parse_event(d: Mapping[str, Any], namespace: str = "") -> MemoryEvent:
    """An event object of the API (``GET /v1/memories/{id}/events``) as a
    :class:`MemoryEvent` (:meth:`MemoryEvent.from_dict`)."""
    return MemoryEvent.from_dict(d, namespace)


def parse_extraction(d: Mapping[str, Any]) -> ExtractResult:
    """The answer of ``POST /v1/memories/extract`` as an :class:`ExtractResult`."""
    from .manager.decide import Decision, DecisionEvent
    from .manager.extract import Candidate

    def candidate(c: Mapping[str, Any]) -> Candidate:
        return Candidate(
            type=c["type"],
            content=c["content"],
            about=c["about"],
            occurred_at=c.get("occurred_at"),
            source_seqs=tuple(int(n) for n in c.get("source_seqs") or ()),
            importance=float(c["importance"]),
            session_id=c["session_id"],
            user_id=c.get("user_id"),
            agent_id=c.get("agent_id"),
        )

    decisions = [
        Decision(
            action=x["action"],
            candidate=candidate(x["candidate"]),
            target_id=x.get("target_id"),
            new_content=x.get("new_content"),
            reason=x["reason"],
            model=x.get("model"),
            prompt_version=x["prompt_version"],
            target_content=x.get("target_content"),
        )
        for x in d["decisions"]
    ]
    applied = [
        DecisionEvent(
            action=x["action"],
            memory_id=x.get("memory_id"),
            reason=x["reason"],
            model=x.get("model"),
            prompt_version=x["prompt_version"],
            session_id=x["session_id"],
            seqs=tuple(int(n) for n in x.get("seqs") or ()),
            content=x.get("content"),
            previous_content=x.get("previous_content"),
            at=_dt(x["at"]),
        )
        for x in d["applied"]
    ]
    return ExtractResult(
        session_id=d["session_id"],
        stored=int(d["stored"]),
        dry_run=bool(d["dry_run"]),
        decisions=decisions,
        applied=applied,
        tokens=int(d["tokens"]),
    )


def parse_hit(d: Mapping[str, Any]) -> Hit:
    """A hit object of the API as a :class:`Hit` (:meth:`Hit.from_dict`)."""
    return Hit.from_dict(d)


def parse_triple(d: Mapping[str, Any]) -> Triple:
    """A triple object of the API as a :class:`Triple` (:meth:`Triple.from_dict`)."""
    return Triple.from_dict(d)


def parse_version(d: Mapping[str, Any]) -> MemoryVersion:
    """A version object of the API as a :class:`MemoryVersion`."""
    return MemoryVersion.from_dict(d)


def parse_session(d: Mapping[str, Any]) -> SessionInfo:
    """A session object of the API as a :class:`SessionInfo` (:meth:`SessionInfo.from_dict`)."""
    return SessionInfo.from_dict(d)


def parse_key(d: Mapping[str, Any]) -> ApiKey:
    """A key object of the API as an :class:`ApiKey` (:meth:`ApiKey.from_dict`)."""
    return ApiKey.from_dict(d)


def _registration(d: Mapping[str, Any]) -> Registration:
    return Registration(d["api_key"], d["key_id"], d["namespace"], d.get("agent_name"))


# -- errors and retry decisions ------------------------------------------------------------


def _error_body(response: httpx.Response) -> tuple[str | None, str]:
    """``(code, message)`` of an error response; a body not in the API's shape is quoted."""
    try:
        error = _loads(response.content)["error"]
        code, message = error.get("code"), error.get("message")
        if isinstance(message, str):
            return (code if isinstance(code, str) else None), message
    except Exception:
        pass
    text = response.text.strip()[:300] or response.reason_phrase
    return None, f"HTTP {response.status_code} from {response.request.url}: {text}"


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (a number or an HTTP date), or ``None``."""
    return parse_retry_after(response.headers.get("retry-after"))


def error_for(response: httpx.Response) -> EngramError:
    """The engramdb exception for an error response, with the server's message."""
    status = response.status_code
    code, message = _error_body(response)
    error: EngramError
    if status in (400, 422):
        error = InvalidInputError(message)
    elif status == 401:
        error = AuthenticationError(message)
    elif status == 403:
        error = PermissionDeniedError(message)
    elif status == 404:
        error = NotFoundError(message)
    elif status == 409:
        error = LeaseHeldError(message) if code == "lease_held" else ConflictError(message)
    elif status == 413:
        error = PayloadTooLargeError(message)
    elif status == 429:
        error = RateLimitError(message, retry_after=retry_after(response))
    elif code == "corrupt_record":  # reported and left in place, as the local store does
        error = CorruptRecordError(message)
    elif code == "llm_unavailable":
        error = LLMUnavailableError(message)
    elif code == "llm_bad_response":
        error = LLMResponseError(message)
    elif status == 503:
        error = StoreError(message) if code == "store_error" else StoreUnavailableError(message)
    elif 400 <= status < 500:
        error = InvalidInputError(message)
    else:
        error = ServerError(message)
    error.status, error.code = status, code
    return error


def _unreachable(base_url: str, exc: httpx.TransportError) -> StoreUnavailableError:
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        what = f"cannot connect to the engramdb server at {base_url}"
    elif isinstance(exc, httpx.TimeoutException):
        what = f"the engramdb server at {base_url} did not answer in time"
    else:
        what = f"the connection to the engramdb server at {base_url} failed"
    return StoreUnavailableError(f"{what}: {exc or type(exc).__name__}")


# -- export / import (JSON Lines bodies, streamed both ways) ---------------------------------

_TRANSFER_CHUNK = 1 << 20
ProgressFn = Callable[[str, int, "int | None"], None]
"""``progress(step, done, total)``, as the library's export and import report."""


def _import_report(d: Mapping[str, Any]) -> ImportReport:
    from .transfer import ImportReport

    return ImportReport(
        namespaces=list(d["namespaces"]),
        created=dict(d["created"]),
        skipped=dict(d["skipped"]),
        legacy=bool(d["legacy"]),
        records=int(d["records"]),
    )


def _export_line(line: str) -> dict[str, Any]:
    record: dict[str, Any] = orjson.loads(line)
    return record


def _upload(source: str | Path | IO[bytes]) -> tuple[IO[bytes], bool, int | None]:
    """The file to send, whether to close it, and its size (when known)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InvalidInputError(f"{path} is not a file")
        return path.open("rb"), True, path.stat().st_size
    size = None
    if source.seekable():
        start = source.tell()
        size = source.seek(0, 2) - start
        source.seek(start)
    return source, False, size


def _chunks_of(f: IO[bytes], progress: ProgressFn | None, total: int | None) -> Iterator[bytes]:
    done = 0
    if progress is not None:
        progress("sending", 0, total)
    while chunk := f.read(_TRANSFER_CHUNK):
        done += len(chunk)
        if progress is not None:
            progress("sending", done, total)
        yield chunk


class _ExportCounter:
    """Counts the records written for ``progress("exporting", done, total)``."""

    def __init__(self, progress: ProgressFn | None, stats: Callable[[], Mapping[str, Any]]):
        self.progress = progress
        self.done = 0
        self.total = 0
        if progress is not None:
            s = stats()
            self.total = sum(int(s[k]) for k in ("memories", "triples", "sessions"))
            self.total += int(s["session_items"])
            progress("exporting", 0, self.total)

    def tick(self, kind: str) -> None:
        from .transfer import COUNTED

        if self.progress is not None and kind in COUNTED:
            self.done += 1
            self.progress("exporting", self.done, self.total)


def _sink(path: str | Path | IO[bytes]) -> tuple[IO[bytes], bool]:
    if isinstance(path, (str, Path)):
        return Path(path).open("wb"), True
    return path, False


def _write_record(out: IO[bytes], record: Mapping[str, Any], counts: dict[str, int]) -> str:
    out.write(orjson.dumps(record) + b"\n")
    kind = str(record["type"])
    counts[kind] = counts.get(kind, 0) + 1
    return kind


class _Core:
    """What both clients share: settings, headers, request building, the retry policy."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        retries: int,
        backoff: float,
        max_retry_wait: float,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.strip():
            raise InvalidInputError("base_url must be the server's URL, e.g. http://127.0.0.1:8765")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidInputError(f"retries must be an integer >= 0, got {retries!r}")
        if not backoff >= 0 or not max_retry_wait >= 0:
            raise InvalidInputError("backoff and max_retry_wait must be >= 0 seconds")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.retries = retries
        self.backoff = float(backoff)
        self.max_retry_wait = float(max_retry_wait)

    def _headers(self, call: _Call[Any]) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if call.auth and self.api_key is not None:
            headers["X-API-Key"] = self.api_key
        if call.body is not None:
            headers["Content-Type"] = "application/json"
        if call.idempotency_key is not None:
            headers["Idempotency-Key"] = call.idempotency_key
        return headers

    def _transfer_headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/x-ndjson, application/json"}
        if self.api_key is not None:
            headers["X-API-Key"] = self.api_key
        if content_type is not None:
            headers["Content-Type"] = content_type
        return headers

    def _backoff(self, attempt: int) -> float:
        step = self.backoff * (2.0**attempt)
        return min(self.max_retry_wait, step / 2 + random.uniform(0, step / 2))

    def _delay_after_error(
        self, call: _Call[Any], exc: httpx.TransportError, attempt: int
    ) -> float | None:
        """Seconds to wait before retrying after a transport error, or ``None``: give up."""
        if attempt >= self.retries:
            return None
        # a refused connection (or no free connection) means nothing was sent
        not_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
        return self._backoff(attempt) if (not_sent or call.safe) else None

    def _delay_after_response(
        self, call: _Call[Any], response: httpx.Response, error: EngramError, attempt: int
    ) -> float | None:
        """Seconds to wait before retrying after an error response, or ``None``: give up."""
        if attempt >= self.retries:
            return None
        status = response.status_code
        if error.code in DONE_BEFORE_FAILING:
            return None
        if status == 429:  # refused before anything ran: safe to repeat any call
            wait = error.retry_after if isinstance(error, RateLimitError) else None
            if wait is None:
                return self._backoff(attempt)
            if wait > self.max_retry_wait:
                return None
            return wait + random.uniform(0, self.backoff / 2)
        if status in RETRY_STATUSES and call.safe:
            return self._backoff(attempt)
        if status == 409 and error.code == "idempotency_in_progress":
            return self._backoff(attempt)  # our earlier attempt is still running
        return None

    def _result(self, call: _Call[_T], response: httpx.Response) -> _T:
        try:
            data = _loads(response.content)
        except ValueError:
            raise ServerError(
                f"HTTP {response.status_code} from {response.request.url} is not JSON: "
                f"{response.text[:200]!r}"
            ) from None
        try:
            return call.parse(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ServerError(
                f"unexpected response from {call.method} {call.path}: {exc!r} in {data!r:.300}"
            ) from None

    # -- request builders (one per API call; shared by both faces) -----------------------

    _memory = staticmethod(parse_memory)
    _triple = staticmethod(parse_triple)
    _session = staticmethod(parse_session)

    @staticmethod
    def _sid(session_id: str) -> str:
        return _segment(check_id("session_id", session_id))

    def _c_get_items(self, session_id: str, limit: int | None) -> _Call[builtins.list[JSONItem]]:
        limit = check_limit(limit, allow_none=True, minimum=0, maximum=None)
        params = None if limit is None else (("limit", str(limit)),)
        return _Call(
            "GET",
            f"/v1/sessions/{self._sid(session_id)}/items",
            lambda d: d["items"],
            params=params,
            on_404=list,  # a session nothing was ever added to is an empty one
        )

    def _c_add_items(self, session_id: str, items: Sequence[JSONItem]) -> _Call[int]:
        path = f"/v1/sessions/{self._sid(session_id)}/items"
        # items travel as the exact JSON text the local sessions store: key order and every
        # value survive, and a bad batch is refused here, with the local session's errors
        texts = encode_items(items)
        body = ('{"items":[' + ",".join(texts) + "]}").encode("utf-8")
        return _write("POST", path, body, lambda d: int(d["added"]))

    def _c_replace_items(self, session_id: str, items: Sequence[JSONItem]) -> _Call[int]:
        path = f"/v1/sessions/{self._sid(session_id)}/items"
        texts = encode_items(items)  # checked here, as in _c_add_items
        body = ('{"items":[' + ",".join(texts) + "]}").encode("utf-8")
        return _write("PUT", path, body, lambda d: int(d["removed"]))

    def _c_pop_item(self, session_id: str) -> _Call[JSONItem | None]:
        return _write(
            "POST", f"/v1/sessions/{self._sid(session_id)}/pop", None, lambda d: d["item"]
        )

    def _c_clear_session(self, session_id: str) -> _Call[int]:
        path = f"/v1/sessions/{self._sid(session_id)}/clear"
        return _write("POST", path, None, lambda d: int(d["removed"]))

    def _c_delete_session(self, session_id: str) -> _Call[bool]:
        return _Call(
            "DELETE", f"/v1/sessions/{self._sid(session_id)}", lambda d: bool(d["deleted"])
        )

    def _c_session_info(self, session_id: str) -> _Call[SessionInfo | None]:
        return _Call(
            "GET",
            f"/v1/sessions/{self._sid(session_id)}",
            self._session,
            on_404=lambda: None,
        )

    def _c_list_sessions(self, limit: int, cursor: str | None) -> _Call[SessionPage]:
        check_limit(limit)
        params = (("limit", str(limit)),) + ((("cursor", cursor),) if cursor else ())
        return _Call(
            "GET",
            "/v1/sessions",
            lambda d: SessionPage([self._session(s) for s in d["sessions"]], d.get("next_cursor")),
            params=params,
        )

    @staticmethod
    def _entry(
        content: str,
        *,
        user_id: str | None,
        agent_id: str | None,
        session_id: str | None,
        tags: Sequence[str] | None,
        metadata: Mapping[str, Any] | None,
        importance: float | None,
        occurred_at: datetime | str | None,
    ) -> dict[str, Any]:
        return _drop_none(
            content=content,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            tags=list(tags) if tags is not None and not isinstance(tags, str) else tags,
            metadata=metadata,
            importance=importance,
            occurred_at=(
                format_datetime(parse_datetime("occurred_at", occurred_at))
                if occurred_at is not None
                else None
            ),
        )

    def _c_remember(self, entry: dict[str, Any]) -> _Call[MemoryRecord]:
        return _write("POST", "/v1/memories", _dumps(entry), self._memory)

    def _c_remember_many(
        self, entries: Iterable[Mapping[str, Any]], errors: BatchErrors = "raise"
    ) -> _Call[builtins.list[MemoryRecord | EntryError]]:
        if errors not in ("raise", "skip"):
            raise InvalidInputError(f"errors must be 'raise' or 'skip', got {errors!r}")
        batch: builtins.list[Any] = []
        for n, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                if errors == "raise":
                    raise InvalidInputError(f"entry {n} must be a dict, got {type(entry).__name__}")
                batch.append(entry)  # the server reports it in its place
                continue
            batch.append({k: v for k, v in entry.items() if v is not None})

        def parse(d: Any) -> builtins.list[MemoryRecord | EntryError]:
            failed = {e.index: e for e in map(EntryError.from_dict, d.get("errors") or ())}
            return [
                failed[n] if m is None else self._memory(m) for n, m in enumerate(d["memories"])
            ]

        body = {"memories": batch, **({"errors": "skip"} if errors == "skip" else {})}
        return _write("POST", "/v1/memories/batch", _dumps(body), parse)

    def _c_recall(
        self,
        query: str,
        filters: FilterInput,
        limit: int,
        mode: Mode | None,
        explain: bool,
        tags: Sequence[str] | None = None,
        min_score: float | None = 0.0,
        as_of: datetime | str | None = None,
    ) -> _Call[builtins.list[Hit]]:
        check_limit(limit)
        floor = check_min_score(min_score)
        flt = Filter.parse(filters)
        if tags is not None:  # exact tags, all of them: the same as filters["tags"]
            flt = replace(flt, tags=normalize_tags([*flt.tags, *normalize_tags(tags)]))
        body = _drop_none(
            query=query,
            filters=_filter_dict(flt) if filters is not None or tags is not None else None,
            limit=limit,
            mode=mode,
            explain=explain or None,
            as_of=format_datetime(parse_datetime("as_of", as_of)) if as_of is not None else None,
        )
        if floor != 0.0:
            body["min_score"] = floor  # null: no floor at all

        def parse(d: Any) -> builtins.list[Hit]:
            return [parse_hit(h) for h in d["hits"]]

        # a read, safe to repeat; no Idempotency-Key, so the server does not keep its results
        return _Call("POST", "/v1/memories/recall", parse, body=_dumps(body))

    def _c_get(self, memory_id: str) -> _Call[MemoryRecord]:
        return _Call(
            "GET", f"/v1/memories/{_segment(check_id('memory_id', memory_id))}", self._memory
        )

    def _c_list(
        self,
        filters: FilterInput,
        cursor: str | None,
        limit: int,
        include_invalidated: bool = False,
    ) -> _Call[Page]:
        flt = Filter.parse(filters)
        if flt.metadata or flt.since or flt.until:
            raise InvalidInputError(
                "the server lists memories by user_id, agent_id, session_id and tags only; "
                "use recall() for metadata or time filters"
            )
        params = [("limit", str(check_limit(limit)))]
        params += [(k, v) for k in ("user_id", "agent_id", "session_id") if (v := getattr(flt, k))]
        params += [("tag", tag) for tag in flt.tags]
        if cursor is not None:
            params.append(("cursor", cursor))
        if _flag("include_invalidated", include_invalidated):
            params.append(("include_invalidated", "true"))
        return _Call(
            "GET",
            "/v1/memories",
            lambda d: Page([self._memory(m) for m in d["memories"]], d.get("next_cursor")),
            params=tuple(params),
        )

    def _c_update(self, memory_id: str, changes: dict[str, Any]) -> _Call[MemoryRecord]:
        path = f"/v1/memories/{_segment(check_id('memory_id', memory_id))}"
        return _write("PATCH", path, _dumps(changes), self._memory)

    def _c_history(
        self, memory_id: str, limit: int | None = None
    ) -> _Call[builtins.list[MemoryVersion]]:
        count = check_limit(limit, allow_none=True)
        return _Call(
            "GET",
            f"/v1/memories/{_segment(check_id('memory_id', memory_id))}/history",
            lambda d: [parse_version(v) for v in d["versions"]],
            params=None if count is None else (("limit", str(count)),),
        )

    def _c_events(self, memory_id: str) -> _Call[builtins.list[MemoryEvent]]:
        return _Call(
            "GET",
            f"/v1/memories/{_segment(check_id('memory_id', memory_id))}/events",
            lambda d: [parse_event(e) for e in d["events"]],
        )

    def _c_set_invalidated(
        self, memory_id: str, action: Literal["invalidate", "restore"], reason: str | None
    ) -> _Call[MemoryRecord]:
        if reason is not None and not isinstance(reason, str):
            raise InvalidInputError(f"reason must be a string, got {type(reason).__name__}")
        path = f"/v1/memories/{_segment(check_id('memory_id', memory_id))}/{action}"
        return _write("POST", path, _dumps(_drop_none(reason=reason)), self._memory)

    def _c_add_messages(
        self,
        messages: Iterable[JSONItem],
        session_id: str,
        user_id: str | None,
        agent_id: str | None,
        infer: bool,
        dry_run: bool,
    ) -> _Call[ExtractResult]:
        if isinstance(messages, (str, bytes, dict)):
            raise InvalidInputError("messages must be a list of dicts")
        # the exact JSON text the local session stores, checked as add_items checks it
        texts = encode_items(builtins.list(messages))
        rest = {
            "session_id": check_id("session_id", session_id),
            "infer": _flag("infer", infer),
            "dry_run": _flag("dry_run", dry_run),
            **self._scope(user_id, agent_id),
        }
        body = b'{"messages":[' + ",".join(texts).encode("utf-8") + b"]," + _dumps(rest)[1:]
        return _write("POST", "/v1/memories/extract", body, parse_extraction)

    def _c_extract(
        self,
        session_id: str,
        user_id: str | None,
        agent_id: str | None,
        infer: bool,
        dry_run: bool,
    ) -> _Call[ExtractResult]:
        body = {
            "infer": _flag("infer", infer),
            "dry_run": _flag("dry_run", dry_run),
            **self._scope(user_id, agent_id),
        }
        path = f"/v1/sessions/{self._sid(session_id)}/extract"
        return _write("POST", path, _dumps(body), parse_extraction)

    @staticmethod
    def _scope(user_id: str | None, agent_id: str | None) -> dict[str, str]:
        return {
            name: check_id(name, value)
            for name, value in (("user_id", user_id), ("agent_id", agent_id))
            if value is not None
        }

    def _c_forget(
        self, memory_id: str | None, filters: FilterInput, all: bool, dry_run: bool
    ) -> _Call[ForgetResult]:
        if memory_id is not None and (filters is not None or all):
            raise InvalidInputError("pass either a memory id or filters, not both")
        if memory_id is None and filters is None and not all:
            raise InvalidInputError("pass either a memory id, filters, or all=True")

        def parse(d: Any) -> ForgetResult:
            return ForgetResult(list(d["ids"]), bool(d["dry_run"]))

        if memory_id is not None:
            path = f"/v1/memories/{_segment(check_id('memory_id', memory_id))}"
            if dry_run:  # what would go: the memory, if it exists
                return _Call("GET", path, lambda d: ForgetResult([d["id"]], True))
            return _Call("DELETE", path, parse)
        body: dict[str, Any] = {"dry_run": bool(dry_run)}
        if filters is not None:
            body["filters"] = _filters(filters)
        if all:
            body["all"] = True
        return _write("POST", "/v1/memories/forget", _dumps(body), parse)

    def _c_forget_fact(self, fact_id: str) -> _Call[ForgetResult]:
        path = f"/v1/triples/{_segment(check_id('fact_id', fact_id))}"
        return _Call("DELETE", path, lambda d: ForgetResult(list(d["ids"]), False))

    def _c_forget_facts(
        self, subject: str | None, predicate: str | None, object: str | None, dry_run: bool
    ) -> _Call[ForgetResult]:
        body = _drop_none(subject=subject, predicate=predicate, object=object)
        return _write(
            "POST",
            "/v1/triples/forget",
            _dumps({**body, "dry_run": bool(dry_run)}),
            lambda d: ForgetResult(list(d["ids"]), bool(d["dry_run"])),
        )

    def _c_learn(self, body: dict[str, Any]) -> _Call[Triple]:
        return _write("POST", "/v1/triples", _dumps(body), lambda d: self._triple(d["triple"]))

    def _c_facts(
        self,
        subject: str | None,
        predicate: str | None,
        object: str | None,
        as_of: datetime | str | None,
        include_history: bool,
        limit: int,
    ) -> _Call[builtins.list[Triple]]:
        params = [
            (k, v)
            for k, v in (("subject", subject), ("predicate", predicate), ("object", object))
            if v is not None
        ]
        if as_of is not None:
            params.append(("as_of", _iso(as_of)))
        if include_history:
            params.append(("include_history", "true"))
        params.append(("limit", str(check_limit(limit))))
        return _Call(
            "GET",
            "/v1/triples",
            lambda d: [self._triple(t) for t in d["triples"]],
            params=tuple(params),
        )

    def _c_neighbors(self, entity: str, depth: int) -> _Call[builtins.list[Triple]]:
        return _Call(
            "GET",
            "/v1/triples/neighbors",
            lambda d: [self._triple(t) for t in d["triples"]],
            params=(("entity", entity), ("depth", str(depth))),
        )

    def _c_stats(self) -> _Call[dict[str, Any]]:
        return _Call("GET", "/v1/stats", dict)

    # -- consolidation ---------------------------------------------------------------------
    @staticmethod
    def _c_context(
        query: str,
        scope: str | None,
        user_id: str | None,
        agent_id: str | None,
        session_id: str | None,
        budget_tokens: int,
        limit: int,
    ) -> _Call[Context]:
        body = _drop_none(
            query=query,
            scope=scope,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            budget_tokens=budget_tokens,
            limit=limit,
        )
        return _Call(
            "POST", "/v1/context", lambda d: Context(d["text"], tuple(d["ids"])), body=_dumps(body)
        )

    @staticmethod
    def _c_consolidate(
        scope: str, dry_run: bool, idle_seconds: float | None, retry_failed: bool
    ) -> _Call[dict[str, Any]]:
        body = _drop_none(
            scope=scope, dry_run=dry_run, idle_seconds=idle_seconds, retry_failed=retry_failed
        )
        return _Call("POST", "/v1/consolidate", dict, body=_dumps(body), safe=dry_run)

    @staticmethod
    def _c_consolidation_status(scope: str | None) -> _Call[dict[str, Any]]:
        params = None if scope is None else (("scope", scope),)
        return _Call("GET", "/v1/consolidate/status", dict, params=params)

    @staticmethod
    def _c_configure_scope(
        scope: str, enabled: bool | None, session_prefix: str | None
    ) -> _Call[dict[str, Any]]:
        body = _drop_none(scope=scope, enabled=enabled, session_prefix=session_prefix)
        return _Call("PUT", "/v1/consolidate/scopes", dict, body=_dumps(body))

    @staticmethod
    def _c_memory_md(scope: str) -> _Call[str | None]:
        return _Call(
            "GET",
            "/v1/memory-md",
            lambda d: str(d["content"]),
            params=(("scope", scope),),
            on_404=lambda: None,
        )

    @staticmethod
    def _c_memory_summary(scope: str, budget_tokens: int) -> _Call[str]:
        params = (("scope", scope), ("budget_tokens", str(budget_tokens)))
        return _Call("GET", "/v1/memory-summary", lambda d: str(d["text"]), params=params)

    @staticmethod
    def _c_reset_memory_md(scope: str) -> _Call[bool]:
        return _Call(
            "POST", "/v1/memory-md/reset", lambda d: bool(d["reset"]), body=_dumps({"scope": scope})
        )

    @staticmethod
    def _c_traces(scope: str) -> _Call[builtins.list[dict[str, Any]]]:
        return _Call("GET", "/v1/traces", lambda d: list(d["traces"]), params=(("scope", scope),))

    @staticmethod
    def _c_trace(scope: str, session_id: str) -> _Call[dict[str, Any] | None]:
        path = f"/v1/traces/{_segment(check_id('session_id', session_id))}"
        return _Call("GET", path, dict, params=(("scope", scope),), on_404=lambda: None)

    @staticmethod
    def _c_memory_md_history(scope: str) -> _Call[builtins.list[dict[str, Any]]]:
        return _Call(
            "GET",
            "/v1/memory-md/history",
            lambda d: list(d["versions"]),
            params=(("scope", scope),),
        )

    @staticmethod
    def _c_memory_md_diff(scope: str, old: int | None, new: int | None) -> _Call[str]:
        params = [("scope", scope)]
        params += [(name, str(v)) for name, v in (("old", old), ("new", new)) if v is not None]
        return _Call("GET", "/v1/memory-md/diff", lambda d: str(d["diff"]), params=tuple(params))

    @staticmethod
    def _c_delete_trace(scope: str, session_id: str) -> _Call[bool]:
        path = f"/v1/traces/{_segment(check_id('session_id', session_id))}"
        return _Call("DELETE", path, lambda d: bool(d["deleted"]), params=(("scope", scope),))

    def _c_create_key(
        self,
        name: str,
        purpose: str | None,
        namespace: str | None,
        limits: Mapping[str, int | None] | None,
    ) -> _Call[CreatedKey]:
        body = _drop_none(name=name, purpose=purpose, namespace=namespace, limits=limits)
        # no Idempotency-Key: the server would keep the response, the secret in it, for a day;
        # so it is retried only when it was never sent
        return _Call(
            "POST",
            "/v1/keys",
            lambda d: CreatedKey(d["api_key"], parse_key(d["key"])),
            body=_dumps(body),
            safe=False,
        )

    def _c_list_keys(self, namespace: str | None) -> _Call[builtins.list[ApiKey]]:
        params = None if namespace is None else (("namespace", namespace),)
        return _Call("GET", "/v1/keys", lambda d: [parse_key(k) for k in d["keys"]], params=params)

    def _c_revoke_key(self, key_id: str) -> _Call[ApiKey]:
        path = f"/v1/keys/{_segment(check_id('key_id', key_id))}"
        return _Call("DELETE", path, lambda d: parse_key(d["key"]))

    @staticmethod
    def _c_health() -> _Call[dict[str, Any]]:
        return _Call("GET", "/health", dict, auth=False)

    @staticmethod
    def _c_register(agent_name: str, purpose: str | None, admin: bool) -> _Call[Registration]:
        body = _dumps(_drop_none(agent_name=agent_name, purpose=purpose))
        # no namespace yet, so no Idempotency-Key: retried only when it was never sent
        return _Call("POST", "/api/keys/register", _registration, body=body, safe=False, auth=admin)


def _triple_body(
    subject: str,
    predicate: str,
    object: str,
    confidence: float | None,
    source: str | None,
    valid_from: datetime | str | None,
    single_valued: bool,
    valid_to: datetime | str | None = None,
) -> dict[str, Any]:
    return _drop_none(
        subject=subject,
        predicate=predicate,
        object=object,
        confidence=confidence,
        source=source,
        valid_from=valid_from,
        valid_to=valid_to,
        single_valued=single_valued or None,
    )


def _changes(
    content: str | None,
    tags: Sequence[str] | None,
    metadata: Mapping[str, Any] | None,
    importance: float | None,
) -> dict[str, Any]:
    return _drop_none(
        content=content,
        tags=list(tags) if tags is not None and not isinstance(tags, str) else tags,
        metadata=metadata,
        importance=importance,
    )


# -- the synchronous face ------------------------------------------------------------------


class Client(_Core):
    """Synchronous client of an engramdb server. Thread-safe; close it (or use ``with``).

    ``transport`` replaces httpx's network transport (for example ``httpx.MockTransport`` or
    an ``httpx.HTTPTransport`` with custom TLS settings).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        max_retry_wait: float = MAX_RETRY_WAIT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url, api_key, retries=retries, backoff=backoff, max_retry_wait=max_retry_wait
        )
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": _USER_AGENT},
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, call: _Call[_T]) -> _T:
        headers = self._headers(call)
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    call.method, call.path, params=call.params, content=call.body, headers=headers
                )
            except httpx.TransportError as exc:
                delay = self._delay_after_error(call, exc, attempt)
                if delay is None:
                    raise _unreachable(self.base_url, exc) from exc
            else:
                if response.is_success:
                    return self._result(call, response)
                if response.status_code == 404 and call.on_404 is not None:
                    return call.on_404()
                error = error_for(response)
                delay = self._delay_after_response(call, response, error, attempt)
                if delay is None:
                    raise error
            time.sleep(delay)
            attempt += 1

    @classmethod
    def register(
        cls,
        base_url: str,
        agent_name: str,
        *,
        purpose: str | None = None,
        admin_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> Registration:
        """Register a new key with its own namespace (``POST /api/keys/register``).

        Servers with ``registration = "admin"`` need an ``admin_key``.
        """
        with cls(base_url, admin_key, timeout=timeout, transport=transport) as client:
            return client._run(client._c_register(agent_name, purpose, admin_key is not None))

    # -- sessions --------------------------------------------------------------------------
    def get_items(self, session_id: str, limit: int | None = None) -> builtins.list[JSONItem]:
        """The last ``limit`` items of a session, oldest first (``None``: all; ``0``: none)."""
        return self._run(self._c_get_items(session_id, limit))

    def add_items(self, session_id: str, items: Sequence[JSONItem]) -> int:
        """Append items in order, all or nothing; returns how many were added."""
        return self._run(self._c_add_items(session_id, items))

    def replace_items(self, session_id: str, items: Sequence[JSONItem]) -> int:
        """Replace a session's whole history with ``items`` atomically (the old history or
        the new one, never a gap); returns how many items were removed."""
        return self._run(self._c_replace_items(session_id, items))

    def pop_item(self, session_id: str) -> JSONItem | None:
        """Remove and return the newest item (``None`` if the session is empty)."""
        return self._run(self._c_pop_item(session_id))

    def clear_session(self, session_id: str) -> int:
        """Remove every item of a session; returns how many were removed."""
        return self._run(self._c_clear_session(session_id))

    def delete_session(self, session_id: str) -> bool:
        """Delete a session and its items; ``False`` if it did not exist."""
        return self._run(self._c_delete_session(session_id))

    def session_info(self, session_id: str) -> SessionInfo | None:
        """Created/updated times and item count, or ``None`` if it never had items."""
        return self._run(self._c_session_info(session_id))

    def list_sessions(self, *, limit: int = 50, cursor: str | None = None) -> SessionPage:
        """Sessions of the key's namespace, a page at a time."""
        return self._run(self._c_list_sessions(limit, cursor))

    # -- memories --------------------------------------------------------------------------
    def remember(
        self,
        content: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        importance: float | None = None,
        occurred_at: datetime | str | None = None,
    ) -> MemoryRecord:
        """Store one memory (or get the identical one already stored in this scope)."""
        entry = self._entry(
            content,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            tags=tags,
            metadata=metadata,
            importance=importance,
            occurred_at=occurred_at,
        )
        return self._run(self._c_remember(entry))

    @overload
    def remember_many(
        self, entries: Iterable[Mapping[str, Any]], *, errors: Literal["raise"] = "raise"
    ) -> builtins.list[MemoryRecord]: ...

    @overload
    def remember_many(
        self, entries: Iterable[Mapping[str, Any]], *, errors: BatchErrors
    ) -> builtins.list[MemoryRecord | EntryError]: ...

    def remember_many(
        self, entries: Iterable[Mapping[str, Any]], *, errors: BatchErrors = "raise"
    ) -> builtins.list[MemoryRecord] | builtins.list[MemoryRecord | EntryError]:
        """Store a batch (up to 1,000); entries take :meth:`remember`'s arguments.
        ``errors="raise"``: all or nothing. ``errors="skip"``: the good entries are stored and
        each bad one comes back in its place as an :class:`~engramdb.types.EntryError`, as in
        :meth:`engramdb.Memory.remember_many`."""
        return self._run(self._c_remember_many(entries, errors))

    def recall(
        self,
        query: str,
        *,
        filters: FilterInput = None,
        tags: Sequence[str] | None = None,
        limit: int = 10,
        mode: Mode | None = None,
        explain: bool = False,
        min_score: float | None = 0.0,
        as_of: datetime | str | None = None,
    ) -> builtins.list[Hit]:
        """Memories ranked for ``query`` (hybrid full text + vectors unless ``mode`` says).

        ``tags``: exact tags every hit carries. A query made only of ``key:value`` tags (or an
        empty query with ``tags``) is a pure tag lookup, as in :meth:`engramdb.Memory.recall`.
        ``limit`` (1 to 10,000) and ``min_score`` (hits scoring at least this, never one with
        no matching signal; ``None``: every candidate) as in :meth:`engramdb.Memory.recall`.
        ``as_of``: the time the query's time words are read against (default: now).
        """
        return self._run(
            self._c_recall(query, filters, limit, mode, explain, tags, min_score, as_of)
        )

    def get(self, memory_id: str) -> MemoryRecord:
        """One memory by id; :class:`~engramdb.NotFoundError` if absent."""
        return self._run(self._c_get(memory_id))

    def list(
        self,
        filters: FilterInput = None,
        *,
        cursor: str | None = None,
        limit: int = 50,
        include_invalidated: bool = False,
    ) -> Page:
        """Memories in the order stored, a page at a time (filters: user_id, agent_id,
        session_id, tags); invalidated ones only with ``include_invalidated``."""
        return self._run(self._c_list(filters, cursor, limit, include_invalidated))

    def add_messages(
        self,
        messages: Iterable[JSONItem],
        *,
        session_id: str,
        user_id: str | None = None,
        agent_id: str | None = None,
        infer: bool = True,
        dry_run: bool = False,
    ) -> ExtractResult:
        """Store ``messages`` in the session and let the server's model turn what the session
        says into memories (``infer=False``: each message stored as said), as
        :meth:`engramdb.Memory.add_messages` does. :class:`~engramdb.ConflictError` (code
        ``llm_not_configured``) if the server has no model, nothing stored; when the model
        fails (:class:`~engramdb.errors.LLMUnavailableError`,
        :class:`~engramdb.errors.LLMResponseError`) the messages are stored all the same and
        the next call (or :meth:`extract`) extracts them."""
        call = self._c_add_messages(messages, session_id, user_id, agent_id, infer, dry_run)
        return self._run(call)

    def extract(
        self,
        session_id: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        infer: bool = True,
        dry_run: bool = False,
    ) -> ExtractResult:
        """Extract what a session holds past its high-water mark (what an earlier
        :meth:`add_messages` stored but could not extract, items added with
        :meth:`add_items`); :class:`~engramdb.NotFoundError` for an unknown session."""
        return self._run(self._c_extract(session_id, user_id, agent_id, infer, dry_run))

    def events(self, memory_id: str) -> builtins.list[MemoryEvent]:
        """Why a memory exists: the decisions recorded about it, oldest first."""
        return self._run(self._c_events(memory_id))

    def invalidate(self, memory_id: str, reason: str | None = None) -> MemoryRecord:
        """Invalidate a memory (left out of recall and lists, kept with its history,
        restorable with :meth:`restore`)."""
        return self._run(self._c_set_invalidated(memory_id, "invalidate", reason))

    def restore(self, memory_id: str, reason: str | None = None) -> MemoryRecord:
        """Undo :meth:`invalidate`."""
        return self._run(self._c_set_invalidated(memory_id, "restore", reason))

    def update(
        self,
        memory_id: str,
        *,
        content: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        importance: float | None = None,
    ) -> MemoryRecord:
        """Change a memory; the prior version is kept (see :meth:`history`)."""
        changes = _changes(content, tags, metadata, importance)
        return self._run(self._c_update(memory_id, changes))

    def history(self, memory_id: str, *, limit: int | None = None) -> builtins.list[MemoryVersion]:
        """Prior versions of a memory, oldest first: the newest ``limit`` (1 to 10,000), or
        all with ``None``."""
        return self._run(self._c_history(memory_id, limit))

    def forget(
        self,
        memory_id: str | None = None,
        *,
        filters: FilterInput = None,
        all: bool = False,
        dry_run: bool = False,
    ) -> ForgetResult:
        """Remove one memory by id, or every memory matching a scoped filter (user, agent,
        session, tags or metadata; ``since``/``until`` only narrow it), or with ``all=True``
        the whole namespace (within ``since``/``until`` if given)."""
        return self._run(self._c_forget(memory_id, filters, all, dry_run))

    def stats(self) -> dict[str, Any]:
        """Counts, usage, limits and what remains of them for the key's namespace."""
        return self._run(self._c_stats())

    # -- consolidation ---------------------------------------------------------------------
    def context(
        self,
        query: str,
        *,
        scope: str | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        budget_tokens: int = 800,
        limit: int = 20,
    ) -> Context:
        """The prompt block for ``query`` (as :meth:`Memory.context`): with ``scope``, the
        scope's ``MEMORY.md`` first, then the recalled memories."""
        return self._run(
            self._c_context(query, scope, user_id, agent_id, session_id, budget_tokens, limit)
        )

    def consolidate(
        self,
        scope: str,
        *,
        dry_run: bool = False,
        idle_seconds: float | None = None,
        retry_failed: bool = False,
    ) -> dict[str, Any]:
        """Consolidate ``scope`` now on the server, under its cost caps (``POST
        /v1/consolidate``); the run's report as JSON."""
        return self._run(self._c_consolidate(scope, dry_run, idle_seconds, retry_failed))

    def consolidation_status(self, scope: str | None = None) -> dict[str, Any]:
        """Caps, today's spend, and each scope's traces, MEMORY.md, open jobs and spend."""
        return self._run(self._c_consolidation_status(scope))

    def configure_scope(
        self, scope: str, *, enabled: bool | None = None, session_prefix: str | None = None
    ) -> dict[str, Any]:
        """Opt ``scope`` out (``enabled=False``) or in, or keep it to ``session_prefix``."""
        return self._run(self._c_configure_scope(scope, enabled, session_prefix))

    def memory_md(self, scope: str) -> str | None:
        """The scope's ``MEMORY.md``, or ``None`` until consolidation produced it."""
        return self._run(self._c_memory_md(scope))

    def memory_summary(self, scope: str, *, budget_tokens: int = 500) -> str:
        """The scope's routing map, trimmed to ``budget_tokens``."""
        return self._run(self._c_memory_summary(scope, budget_tokens))

    def reset_memory_md(self, scope: str) -> bool:
        """Forget the scope's ``MEMORY.md`` and skills (its traces stay)."""
        return self._run(self._c_reset_memory_md(scope))

    def traces(self, scope: str) -> builtins.list[dict[str, Any]]:
        """The scope's traces, newest first."""
        return self._run(self._c_traces(scope))

    def delete_trace(self, scope: str, session_id: str) -> bool:
        """Forget one session's trace in ``scope``."""
        return self._run(self._c_delete_trace(scope, session_id))

    def trace(self, scope: str, session_id: str) -> dict[str, Any] | None:
        """One session's trace in ``scope`` with its text (``content``), or ``None``."""
        return self._run(self._c_trace(scope, session_id))

    def memory_md_history(self, scope: str) -> builtins.list[dict[str, Any]]:
        """Every version of the scope's ``MEMORY.md`` (``version``, ``content``,
        ``written_at``), newest first."""
        return self._run(self._c_memory_md_history(scope))

    def memory_md_diff(self, scope: str, *, old: int | None = None, new: int | None = None) -> str:
        """A unified diff of the scope's ``MEMORY.md`` (default: the last change)."""
        return self._run(self._c_memory_md_diff(scope, old, new))

    # -- knowledge triples -----------------------------------------------------------------
    def learn(
        self,
        subject: str,
        predicate: str,
        object: str,
        *,
        confidence: float | None = None,
        source: str | None = None,
        valid_from: datetime | str | None = None,
        single_valued: bool = False,
        valid_to: datetime | str | None = None,
    ) -> Triple:
        """Store a fact (``single_valued``: a new object supersedes the current one;
        ``valid_to``: a closed interval, see :meth:`engramdb.Memory.learn`)."""
        body = _triple_body(
            subject, predicate, object, confidence, source, valid_from, single_valued, valid_to
        )
        return self._run(self._c_learn(body))

    def facts(
        self,
        subject: str | None = None,
        predicate: str | None = None,
        object: str | None = None,
        *,
        as_of: datetime | str | None = None,
        include_history: bool = False,
        limit: int = 100,
    ) -> builtins.list[Triple]:
        """Facts matching a pattern (``None`` matches anything)."""
        return self._run(self._c_facts(subject, predicate, object, as_of, include_history, limit))

    def forget_fact(self, fact_id: str) -> ForgetResult:
        """Remove one fact (one version) and the memory that made it searchable."""
        return self._run(self._c_forget_fact(fact_id))

    def forget_facts(
        self,
        subject: str | None = None,
        predicate: str | None = None,
        object: str | None = None,
        *,
        dry_run: bool = False,
    ) -> ForgetResult:
        """Remove every fact matching a pattern (current and superseded versions) with the
        memories that made them searchable. At least one part of the pattern is required."""
        return self._run(self._c_forget_facts(subject, predicate, object, dry_run))

    def neighbors(self, entity: str, *, depth: int = 1) -> builtins.list[Triple]:
        """Facts reachable from ``entity`` within ``depth`` hops."""
        return self._run(self._c_neighbors(entity, depth))

    # -- keys and health -------------------------------------------------------------------
    def create_key(
        self,
        name: str,
        *,
        purpose: str | None = None,
        namespace: str | None = None,
        limits: Mapping[str, int | None] | None = None,
    ) -> CreatedKey:
        """A new key: for this key's namespace, with limits no larger than this key's (left
        out: inherited); admin keys create keys for a *new* ``namespace`` (a fresh one if
        omitted), with any limits."""
        return self._run(self._c_create_key(name, purpose, namespace, limits))

    def list_keys(self, namespace: str | None = None) -> builtins.list[ApiKey]:
        """Keys of this namespace (admin keys: of ``namespace``, or of every namespace)."""
        return self._run(self._c_list_keys(namespace))

    def revoke_key(self, key_id: str) -> ApiKey:
        """Revoke a key; it is refused from now on."""
        return self._run(self._c_revoke_key(key_id))

    # -- export and import -----------------------------------------------------------------
    def export(self, *, with_vectors: bool = False) -> Iterator[dict[str, Any]]:
        """The records of the key's namespace as the server streams them (``GET /v1/export``):
        a header, memories with their history, facts, events, sessions with their items, and
        an end record (docs/export-format.md); ``with_vectors`` includes the embeddings."""
        params = {"with_vectors": "true" if with_vectors else "false"}
        try:
            with self._http.stream(
                "GET", "/v1/export", params=params, headers=self._transfer_headers()
            ) as response:
                if not response.is_success:
                    response.read()
                    raise error_for(response)
                for line in response.iter_lines():
                    if line.strip():
                        yield _export_line(line)
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc

    def export_file(
        self,
        path: str | Path | IO[bytes],
        *,
        with_vectors: bool = False,
        progress: ProgressFn | None = None,
    ) -> dict[str, int]:
        """Write :meth:`export` to a JSON Lines file (a path or a binary file object); returns
        the count per record type. ``progress("exporting", done, total)`` as in the library."""
        counter = _ExportCounter(progress, self.stats)
        counts: dict[str, int] = {}
        out, close = _sink(path)
        try:
            for record in self.export(with_vectors=with_vectors):
                counter.tick(_write_record(out, record, counts))
        finally:
            if close:
                out.close()
        return counts

    def import_file(
        self, path: str | Path | IO[bytes], *, progress: ProgressFn | None = None
    ) -> ImportReport:
        """Import an export file into the key's namespace (``POST /v1/import``), sent as a
        stream: the server checks it whole first (a bad line: :class:`InvalidInputError`
        naming it, nothing stored), then writes it in one transaction checked against the
        key's quota. Idempotent, as the library's import. ``progress("sending", bytes,
        size)`` follows the upload. Not retried (the body is a stream): import again, it
        skips what is there."""
        f, close, size = _upload(path)
        try:
            response = self._http.post(
                "/v1/import",
                content=_chunks_of(f, progress, size),
                headers=self._transfer_headers("application/x-ndjson"),
                timeout=httpx.Timeout(None, connect=5.0),
            )
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc
        finally:
            if close:
                f.close()
        if not response.is_success:
            raise error_for(response)
        return _import_report(response.json())

    def health(self) -> dict[str, Any]:
        """``{"status": "healthy", "version", "store"}``; needs no key."""
        return self._run(self._c_health())


# -- the asynchronous face -----------------------------------------------------------------


async def _pool_lifetime(
    pool: httpx.AsyncClient, closed: Callable[[], None]
) -> AsyncGenerator[None, None]:
    """Closes ``pool`` when its event loop shuts down (``asyncio.run`` finalises async
    generators before it closes the loop), so no connection outlives its loop."""
    try:
        yield
    finally:
        closed()
        await pool.aclose()


class AsyncClient(_Core):
    """Asynchronous client of an engramdb server: :class:`Client`'s methods as coroutines.

    Usable from several event loops in turn (``asyncio.run`` per call, ``Runner.run_sync``):
    each loop gets its own connection pool, closed when that loop shuts down.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        max_retry_wait: float = MAX_RETRY_WAIT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url, api_key, retries=retries, backoff=backoff, max_retry_wait=max_retry_wait
        )
        self.timeout = timeout
        self._transport = transport
        self._lock = threading.Lock()
        # one pool per event loop, each with the guard that closes it when its loop shuts down
        self._pools: dict[
            asyncio.AbstractEventLoop, tuple[httpx.AsyncClient, AsyncGenerator[None, None] | None]
        ] = {}
        self._shared: httpx.AsyncClient | None = None

    def _new_pool(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url,
            timeout=self.timeout,
            transport=self._transport,
            headers={"User-Agent": _USER_AGENT},
        )

    async def _pool(self) -> httpx.AsyncClient:
        if self._transport is not None:  # the caller's transport: one client, their loop
            if self._shared is None:
                self._shared = self._new_pool()
            return self._shared
        loop = asyncio.get_running_loop()
        with self._lock:
            found = self._pools.get(loop)
            if found is not None:
                return found[0]
            for gone in [other for other in self._pools if other.is_closed()]:
                del self._pools[gone]  # closed without finalising its async generators
            pool = self._new_pool()
            self._pools[loop] = (pool, None)
        guard = _pool_lifetime(pool, lambda: self._drop_pool(loop, pool))
        await guard.__anext__()  # registers it with the loop, which finalises it on shutdown
        with self._lock:
            if self._pools.get(loop, (None, None))[0] is pool:
                self._pools[loop] = (pool, guard)
        return pool

    def _drop_pool(self, loop: asyncio.AbstractEventLoop, pool: httpx.AsyncClient) -> None:
        with self._lock:
            if self._pools.get(loop, (None, None))[0] is pool:
                del self._pools[loop]

    async def aclose(self) -> None:
        """Close the connection pool of the running loop (others close with their loops)."""
        if self._shared is not None:
            await self._shared.aclose()
        with self._lock:
            found = self._pools.pop(asyncio.get_running_loop(), None)
        if found is not None:
            pool, guard = found
            if guard is not None:
                await guard.aclose()  # closes the pool
            else:  # pragma: no cover - closed while being opened
                await pool.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _run(self, call: _Call[_T]) -> _T:
        headers = self._headers(call)
        http = await self._pool()
        attempt = 0
        while True:
            try:
                response = await http.request(
                    call.method, call.path, params=call.params, content=call.body, headers=headers
                )
            except httpx.TransportError as exc:
                delay = self._delay_after_error(call, exc, attempt)
                if delay is None:
                    raise _unreachable(self.base_url, exc) from exc
            else:
                if response.is_success:
                    return self._result(call, response)
                if response.status_code == 404 and call.on_404 is not None:
                    return call.on_404()
                error = error_for(response)
                delay = self._delay_after_response(call, response, error, attempt)
                if delay is None:
                    raise error
            await asyncio.sleep(delay)
            attempt += 1

    @classmethod
    async def register(
        cls,
        base_url: str,
        agent_name: str,
        *,
        purpose: str | None = None,
        admin_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> Registration:
        """Register a new key with its own namespace; see :meth:`Client.register`."""
        async with cls(base_url, admin_key, timeout=timeout, transport=transport) as client:
            return await client._run(client._c_register(agent_name, purpose, admin_key is not None))

    # -- sessions --------------------------------------------------------------------------
    async def get_items(self, session_id: str, limit: int | None = None) -> builtins.list[JSONItem]:
        """The last ``limit`` items of a session, oldest first (``None``: all; ``0``: none)."""
        return await self._run(self._c_get_items(session_id, limit))

    async def add_items(self, session_id: str, items: Sequence[JSONItem]) -> int:
        """Append items in order, all or nothing; returns how many were added."""
        return await self._run(self._c_add_items(session_id, items))

    async def replace_items(self, session_id: str, items: Sequence[JSONItem]) -> int:
        """Replace a session's whole history with ``items`` atomically (the old history or
        the new one, never a gap); returns how many items were removed."""
        return await self._run(self._c_replace_items(session_id, items))

    async def pop_item(self, session_id: str) -> JSONItem | None:
        """Remove and return the newest item (``None`` if the session is empty)."""
        return await self._run(self._c_pop_item(session_id))

    async def clear_session(self, session_id: str) -> int:
        """Remove every item of a session; returns how many were removed."""
        return await self._run(self._c_clear_session(session_id))

    async def delete_session(self, session_id: str) -> bool:
        """Delete a session and its items; ``False`` if it did not exist."""
        return await self._run(self._c_delete_session(session_id))

    async def session_info(self, session_id: str) -> SessionInfo | None:
        """Created/updated times and item count, or ``None`` if it never had items."""
        return await self._run(self._c_session_info(session_id))

    async def list_sessions(self, *, limit: int = 50, cursor: str | None = None) -> SessionPage:
        """Sessions of the key's namespace, a page at a time."""
        return await self._run(self._c_list_sessions(limit, cursor))

    # -- memories --------------------------------------------------------------------------
    async def remember(
        self,
        content: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        importance: float | None = None,
        occurred_at: datetime | str | None = None,
    ) -> MemoryRecord:
        """Store one memory (or get the identical one already stored in this scope)."""
        entry = self._entry(
            content,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            tags=tags,
            metadata=metadata,
            importance=importance,
            occurred_at=occurred_at,
        )
        return await self._run(self._c_remember(entry))

    @overload
    async def remember_many(
        self, entries: Iterable[Mapping[str, Any]], *, errors: Literal["raise"] = "raise"
    ) -> builtins.list[MemoryRecord]: ...

    @overload
    async def remember_many(
        self, entries: Iterable[Mapping[str, Any]], *, errors: BatchErrors
    ) -> builtins.list[MemoryRecord | EntryError]: ...

    async def remember_many(
        self, entries: Iterable[Mapping[str, Any]], *, errors: BatchErrors = "raise"
    ) -> builtins.list[MemoryRecord] | builtins.list[MemoryRecord | EntryError]:
        """Store a batch (up to 1,000); ``errors`` as in :meth:`Client.remember_many`."""
        return await self._run(self._c_remember_many(entries, errors))

    async def recall(
        self,
        query: str,
        *,
        filters: FilterInput = None,
        tags: Sequence[str] | None = None,
        limit: int = 10,
        mode: Mode | None = None,
        explain: bool = False,
        min_score: float | None = 0.0,
        as_of: datetime | str | None = None,
    ) -> builtins.list[Hit]:
        """Memories ranked for ``query`` (see :meth:`Client.recall`; ``as_of``: the time its
        time words are read against)."""
        return await self._run(
            self._c_recall(query, filters, limit, mode, explain, tags, min_score, as_of)
        )

    async def get(self, memory_id: str) -> MemoryRecord:
        """One memory by id; :class:`~engramdb.NotFoundError` if absent."""
        return await self._run(self._c_get(memory_id))

    async def list(
        self,
        filters: FilterInput = None,
        *,
        cursor: str | None = None,
        limit: int = 50,
        include_invalidated: bool = False,
    ) -> Page:
        """Memories in the order stored, a page at a time."""
        return await self._run(self._c_list(filters, cursor, limit, include_invalidated))

    async def add_messages(
        self,
        messages: Iterable[JSONItem],
        *,
        session_id: str,
        user_id: str | None = None,
        agent_id: str | None = None,
        infer: bool = True,
        dry_run: bool = False,
    ) -> ExtractResult:
        """See :meth:`Client.add_messages`."""
        call = self._c_add_messages(messages, session_id, user_id, agent_id, infer, dry_run)
        return await self._run(call)

    async def extract(
        self,
        session_id: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        infer: bool = True,
        dry_run: bool = False,
    ) -> ExtractResult:
        """See :meth:`Client.extract`."""
        return await self._run(self._c_extract(session_id, user_id, agent_id, infer, dry_run))

    async def events(self, memory_id: str) -> builtins.list[MemoryEvent]:
        """Why a memory exists: the decisions recorded about it, oldest first."""
        return await self._run(self._c_events(memory_id))

    async def invalidate(self, memory_id: str, reason: str | None = None) -> MemoryRecord:
        """See :meth:`Client.invalidate`."""
        return await self._run(self._c_set_invalidated(memory_id, "invalidate", reason))

    async def restore(self, memory_id: str, reason: str | None = None) -> MemoryRecord:
        """Undo :meth:`invalidate`."""
        return await self._run(self._c_set_invalidated(memory_id, "restore", reason))

    async def update(
        self,
        memory_id: str,
        *,
        content: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        importance: float | None = None,
    ) -> MemoryRecord:
        """Change a memory; the prior version is kept."""
        changes = _changes(content, tags, metadata, importance)
        return await self._run(self._c_update(memory_id, changes))

    async def history(
        self, memory_id: str, *, limit: int | None = None
    ) -> builtins.list[MemoryVersion]:
        """Prior versions of a memory, oldest first (the newest ``limit``; ``None``: all)."""
        return await self._run(self._c_history(memory_id, limit))

    async def forget(
        self,
        memory_id: str | None = None,
        *,
        filters: FilterInput = None,
        all: bool = False,
        dry_run: bool = False,
    ) -> ForgetResult:
        """Remove one memory by id, or every memory matching a scoped filter (user, agent,
        session, tags or metadata; ``since``/``until`` only narrow it), or with ``all=True``
        the whole namespace (within ``since``/``until`` if given)."""
        return await self._run(self._c_forget(memory_id, filters, all, dry_run))

    async def stats(self) -> dict[str, Any]:
        """Counts, usage, limits and what remains of them for the key's namespace."""
        return await self._run(self._c_stats())

    # -- consolidation ---------------------------------------------------------------------
    async def context(
        self,
        query: str,
        *,
        scope: str | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        budget_tokens: int = 800,
        limit: int = 20,
    ) -> Context:
        """The prompt block for ``query`` (as :meth:`Memory.context`): with ``scope``, the
        scope's ``MEMORY.md`` first, then the recalled memories."""
        return await self._run(
            self._c_context(query, scope, user_id, agent_id, session_id, budget_tokens, limit)
        )

    async def consolidate(
        self,
        scope: str,
        *,
        dry_run: bool = False,
        idle_seconds: float | None = None,
        retry_failed: bool = False,
    ) -> dict[str, Any]:
        """Consolidate ``scope`` now on the server, under its cost caps (``POST
        /v1/consolidate``); the run's report as JSON."""
        return await self._run(self._c_consolidate(scope, dry_run, idle_seconds, retry_failed))

    async def consolidation_status(self, scope: str | None = None) -> dict[str, Any]:
        """Caps, today's spend, and each scope's traces, MEMORY.md, open jobs and spend."""
        return await self._run(self._c_consolidation_status(scope))

    async def configure_scope(
        self, scope: str, *, enabled: bool | None = None, session_prefix: str | None = None
    ) -> dict[str, Any]:
        """Opt ``scope`` out (``enabled=False``) or in, or keep it to ``session_prefix``."""
        return await self._run(self._c_configure_scope(scope, enabled, session_prefix))

    async def memory_md(self, scope: str) -> str | None:
        """The scope's ``MEMORY.md``, or ``None`` until consolidation produced it."""
        return await self._run(self._c_memory_md(scope))

    async def memory_summary(self, scope: str, *, budget_tokens: int = 500) -> str:
        """The scope's routing map, trimmed to ``budget_tokens``."""
        return await self._run(self._c_memory_summary(scope, budget_tokens))

    async def reset_memory_md(self, scope: str) -> bool:
        """Forget the scope's ``MEMORY.md`` and skills (its traces stay)."""
        return await self._run(self._c_reset_memory_md(scope))

    async def traces(self, scope: str) -> builtins.list[dict[str, Any]]:
        """The scope's traces, newest first."""
        return await self._run(self._c_traces(scope))

    async def delete_trace(self, scope: str, session_id: str) -> bool:
        """Forget one session's trace in ``scope``."""
        return await self._run(self._c_delete_trace(scope, session_id))

    async def trace(self, scope: str, session_id: str) -> dict[str, Any] | None:
        """One session's trace in ``scope`` with its text (``content``), or ``None``."""
        return await self._run(self._c_trace(scope, session_id))

    async def memory_md_history(self, scope: str) -> builtins.list[dict[str, Any]]:
        """Every version of the scope's ``MEMORY.md`` (``version``, ``content``,
        ``written_at``), newest first."""
        return await self._run(self._c_memory_md_history(scope))

    async def memory_md_diff(
        self, scope: str, *, old: int | None = None, new: int | None = None
    ) -> str:
        """A unified diff of the scope's ``MEMORY.md`` (default: the last change)."""
        return await self._run(self._c_memory_md_diff(scope, old, new))

    # -- knowledge triples -----------------------------------------------------------------
    async def learn(
        self,
        subject: str,
        predicate: str,
        object: str,
        *,
        confidence: float | None = None,
        source: str | None = None,
        valid_from: datetime | str | None = None,
        single_valued: bool = False,
        valid_to: datetime | str | None = None,
    ) -> Triple:
        """Store a fact (see :meth:`Client.learn`)."""
        body = _triple_body(
            subject, predicate, object, confidence, source, valid_from, single_valued, valid_to
        )
        return await self._run(self._c_learn(body))

    async def facts(
        self,
        subject: str | None = None,
        predicate: str | None = None,
        object: str | None = None,
        *,
        as_of: datetime | str | None = None,
        include_history: bool = False,
        limit: int = 100,
    ) -> builtins.list[Triple]:
        """Facts matching a pattern."""
        return await self._run(
            self._c_facts(subject, predicate, object, as_of, include_history, limit)
        )

    async def forget_fact(self, fact_id: str) -> ForgetResult:
        """Remove one fact (one version) and the memory that made it searchable."""
        return await self._run(self._c_forget_fact(fact_id))

    async def forget_facts(
        self,
        subject: str | None = None,
        predicate: str | None = None,
        object: str | None = None,
        *,
        dry_run: bool = False,
    ) -> ForgetResult:
        """Remove every fact matching a pattern (current and superseded versions) with the
        memories that made them searchable. At least one part of the pattern is required."""
        return await self._run(self._c_forget_facts(subject, predicate, object, dry_run))

    async def neighbors(self, entity: str, *, depth: int = 1) -> builtins.list[Triple]:
        """Facts reachable from ``entity`` within ``depth`` hops."""
        return await self._run(self._c_neighbors(entity, depth))

    # -- keys and health -------------------------------------------------------------------
    async def create_key(
        self,
        name: str,
        *,
        purpose: str | None = None,
        namespace: str | None = None,
        limits: Mapping[str, int | None] | None = None,
    ) -> CreatedKey:
        """A new key for this key's namespace (admin keys: a new ``namespace``)."""
        return await self._run(self._c_create_key(name, purpose, namespace, limits))

    async def list_keys(self, namespace: str | None = None) -> builtins.list[ApiKey]:
        """Keys of this namespace (admin keys: of ``namespace``, or of every namespace)."""
        return await self._run(self._c_list_keys(namespace))

    async def revoke_key(self, key_id: str) -> ApiKey:
        """Revoke a key."""
        return await self._run(self._c_revoke_key(key_id))

    # -- export and import -----------------------------------------------------------------
    async def export(self, *, with_vectors: bool = False) -> AsyncIterator[dict[str, Any]]:
        """:meth:`Client.export`: the records of the key's namespace, as they stream in."""
        http = await self._pool()
        params = {"with_vectors": "true" if with_vectors else "false"}
        try:
            async with http.stream(
                "GET", "/v1/export", params=params, headers=self._transfer_headers()
            ) as response:
                if not response.is_success:
                    await response.aread()
                    raise error_for(response)
                async for line in response.aiter_lines():
                    if line.strip():
                        yield _export_line(line)
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc

    async def export_file(
        self,
        path: str | Path | IO[bytes],
        *,
        with_vectors: bool = False,
        progress: ProgressFn | None = None,
    ) -> dict[str, int]:
        """:meth:`Client.export_file`."""
        stats = await self.stats() if progress is not None else {}
        counter = _ExportCounter(progress, lambda: stats)
        counts: dict[str, int] = {}
        out, close = _sink(path)
        try:
            async for record in self.export(with_vectors=with_vectors):
                counter.tick(_write_record(out, record, counts))
        finally:
            if close:
                out.close()
        return counts

    async def import_file(
        self, path: str | Path | IO[bytes], *, progress: ProgressFn | None = None
    ) -> ImportReport:
        """:meth:`Client.import_file`."""
        http = await self._pool()
        f, close, size = _upload(path)

        async def body() -> AsyncIterator[bytes]:
            for chunk in _chunks_of(f, progress, size):
                yield chunk

        try:
            response = await http.post(
                "/v1/import",
                content=body(),
                headers=self._transfer_headers("application/x-ndjson"),
                timeout=httpx.Timeout(None, connect=5.0),
            )
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc
        finally:
            if close:
                f.close()
        if not response.is_success:
            raise error_for(response)
        return _import_report(response.json())

    async def health(self) -> dict[str, Any]:
        """``{"status": "healthy", "version", "store"}``; needs no key."""
        return await self._run(self._c_health())


# -- the OpenAI Agents SDK session over HTTP -----------------------------------------------


class RemoteSession:
    """A session kept by an engramdb server; satisfies the OpenAI Agents SDK ``Session``
    protocol, with the semantics of :class:`engramdb.AsyncSession`.

    >>> session = RemoteSession("user-42", "http://127.0.0.1:8765", api_key=key)  # doctest: +SKIP
    >>> await Runner.run(agent, "Hello", session=session)                       # doctest: +SKIP

    ``client`` is the server's URL (the session opens its own :class:`AsyncClient`; pass
    ``api_key`` and any client options) or an :class:`AsyncClient` to share. Items are checked
    before they are sent: a bad batch fails here with the local session's errors, and nothing
    is stored (an item that is not JSON raises :class:`~engramdb.NotJSONError`, a
    ``TypeError``, as the SDK's sessions do). ``session_settings``: as the SDK's sessions take
    them (see :func:`engramdb.sessions.coerce_session_settings`): ``None`` is the default
    ``SessionSettings()``, a dict goes through the SDK's coercion (unknown keys raise
    ``TypeError``). An explicit ``get_items(limit)`` wins; any non-negative limit is accepted.
    """

    session_settings: SessionSettingsLike

    def __init__(
        self,
        session_id: str,
        client: AsyncClient | str,
        *,
        api_key: str | None = None,
        session_settings: SDKSessionSettings | SessionSettingsLike | dict[str, Any] | None = None,
        **client_options: Any,
    ) -> None:
        self.session_id = check_id("session_id", session_id)
        if isinstance(client, AsyncClient):
            if api_key is not None or client_options:
                raise InvalidInputError(
                    "api_key and client options go to the AsyncClient, not to a session over it"
                )
            self.client, self._owns_client = client, False
        elif isinstance(client, str):
            self.client, self._owns_client = AsyncClient(client, api_key, **client_options), True
        else:
            raise InvalidInputError(
                f"client must be an AsyncClient or the server's URL, got {type(client).__name__}"
            )
        self.session_settings = coerce_session_settings(session_settings)

    async def get_items(self, limit: int | None = None) -> builtins.list[JSONItem]:
        """The last ``limit`` items, oldest first. An explicit limit wins over the settings."""
        return await self.client.get_items(
            self.session_id, resolve_limit(limit, self.session_settings)
        )

    async def add_items(self, items: builtins.list[JSONItem]) -> None:
        """Append items in order; all or nothing (a bad item rejects the batch)."""
        await self.client.add_items(self.session_id, items)

    async def pop_item(self) -> JSONItem | None:
        """Remove and return the newest item, or ``None`` if the session is empty."""
        return await self.client.pop_item(self.session_id)

    async def clear_session(self) -> None:
        """Remove every item."""
        await self.client.clear_session(self.session_id)

    async def replace_items(self, items: builtins.list[JSONItem]) -> int:
        """Replace the whole history atomically on the server (``PUT .../items``); returns
        how many items were removed."""
        return await self.client.replace_items(self.session_id, items)

    async def _atomic_replace_items(self, items: builtins.list[JSONItem]) -> bool:
        """The Agents SDK's atomic history-replacement hook, which its
        ``OpenAIResponsesCompactionSession`` uses."""
        await self.replace_items(items)
        return True

    async def info(self) -> SessionInfo | None:
        """Created/updated times and item count, or ``None`` if nothing was ever written."""
        return await self.client.session_info(self.session_id)

    async def aclose(self) -> None:
        """Close the client if this session opened it."""
        if self._owns_client:
            await self.client.aclose()

    def __repr__(self) -> str:
        return f"RemoteSession({self.session_id!r}, {self.client.base_url!r})"


__all__ = [
    "AsyncClient",
    "Client",
    "CreatedKey",
    "ExtractResult",
    "Registration",
    "RemoteSession",
    "SessionPage",
    "error_for",
    "parse_event",
    "parse_extraction",
    "parse_key",
    "parse_memory",
    "parse_session",
    "parse_triple",
]
