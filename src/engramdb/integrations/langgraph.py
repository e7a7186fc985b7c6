"""engramdb as a LangGraph long-term store (``langgraph.store.base.BaseStore``).

>>> from langgraph.graph import StateGraph                            # doctest: +SKIP
>>> from engramdb.integrations.langgraph import EngramStore          # doctest: +SKIP
>>> graph = builder.compile(store=EngramStore("memories.db"))        # doctest: +SKIP

Each LangGraph item ``(namespace, key)`` is one engramdb memory in the ``Memory``'s namespace:
its content is the value's ``text`` / ``content`` / ``memory`` field (or the value as JSON),
and its metadata holds the LangGraph namespace (whole and label by label, so a namespace
prefix is an exact metadata filter), the key and the value's fields (``lg_v:<field>``, so
equality on a field is a metadata filter too). Putting an existing key
updates the memory (the prior version is kept in :meth:`engramdb.Memory.history`;
``created_at`` stays, ``updated_at`` moves); deleting it forgets the memory. ``search`` with a
``query`` uses engramdb's hybrid recall (full text + vectors), without one it lists the items
in the order they were stored. LangGraph is imported lazily: install ``engramdb[langgraph]``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConflictError, InvalidInputError, NotFoundError
from ..filters import MAX_METADATA_FILTER_KEYS
from ..memory import MAX_LIMIT, Memory
from ..store import Store
from ..types import DEFAULT_NAMESPACE, MemoryRecord

if TYPE_CHECKING:
    from langgraph.store.base import (
        BaseStore,
        GetOp,
        Item,
        ListNamespacesOp,
        MatchCondition,
        Op,
        PutOp,
        Result,
        SearchItem,
        SearchOp,
    )
else:
    from .._extras import require

    require("langgraph.store.base", "langgraph", "the LangGraph integration")
    from langgraph.store.base import (
        BaseStore,
        GetOp,
        Item,
        ListNamespacesOp,
        MatchCondition,
        Op,
        PutOp,
        Result,
        SearchItem,
        SearchOp,
    )

__all__ = ["EngramStore"]

MARKER = "lg_store"
"""Metadata key present (value ``"langgraph"``) on every memory this store writes."""
VALUE_PREFIX = "lg_v:"
"""Metadata key prefix of the value's fields (``{"kind": "pref"}`` is ``lg_v:kind``)."""
MAX_DEPTH = 24
"""Deepest LangGraph namespace (each label is one metadata filter key; engramdb allows 32)."""
_TEXT_FIELDS = ("text", "content", "memory")
MAX_PUSHED_NAME = 256
_PAGE = 1000


class EngramStore(BaseStore):
    """A LangGraph ``BaseStore`` over an engramdb :class:`~engramdb.Memory`.

    ``memory`` is a ``Memory``, or anything ``Memory()`` accepts as a store (a path, a
    ``postgresql://`` URL, a :class:`~engramdb.store.Store`); ``namespace`` is the engramdb
    namespace every item lives in (LangGraph's namespaces are inside it). The store does not
    support TTLs (``supports_ttl`` is false: LangGraph refuses a ``ttl`` before calling it).
    """

    __slots__ = ("_owned", "memory")

    def __init__(
        self,
        memory: Memory | Store | str | Path | None = None,
        *,
        namespace: str | None = None,
        embedder: Any = "auto",
    ) -> None:
        if isinstance(memory, Memory):
            self.memory = memory.scoped(namespace) if namespace is not None else memory
            self._owned = False
        else:
            self.memory = Memory(
                memory, namespace=namespace or DEFAULT_NAMESPACE, embedder=embedder
            )
            self._owned = True

    def close(self) -> None:
        """Close the underlying ``Memory`` if this store opened it."""
        if self._owned:
            self.memory.close()

    # -- BaseStore ---------------------------------------------------------------------------
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ``ops`` in order; one result per op (``None`` for puts and deletes)."""
        results: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                results.append(self._get(op))
            elif isinstance(op, SearchOp):
                results.append(self._search(op))
            elif isinstance(op, PutOp):
                self._put(op)
                results.append(None)
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op))
            else:
                raise InvalidInputError(f"unknown LangGraph store operation {type(op).__name__}")
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """:meth:`batch` on a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.batch, list(ops))

    # -- operations --------------------------------------------------------------------------
    def _find(self, namespace: tuple[str, ...], key: str) -> MemoryRecord | None:
        try:
            return self.memory.get(_item_id(self.memory.namespace, namespace, key))
        except NotFoundError:
            return None

    def _get(self, op: GetOp) -> Item | None:
        namespace = _check_namespace(op.namespace)
        record = self._find(namespace, _check_key(op.key))
        return _item(record) if record is not None else None

    def _put(self, op: PutOp) -> None:
        namespace = _check_namespace(op.namespace)
        key = _check_key(op.key)
        if op.ttl is not None:
            raise InvalidInputError("EngramStore does not support TTLs (pass ttl=None)")
        existing = self._find(namespace, key)
        if op.value is not None and namespace[0] == "langgraph":
            raise InvalidInputError("the root label 'langgraph' is reserved by LangGraph")
        if op.value is None:
            if existing is not None:
                self.memory.forget(existing.id)
            return
        if not isinstance(op.value, Mapping) or not all(isinstance(k, str) for k in op.value):
            raise InvalidInputError("value must be a dict with string keys")
        value = dict(op.value)
        metadata = _metadata(namespace, key, value)
        content = _content(value)
        if existing is not None:
            self.memory.update(existing.id, content=content, metadata=metadata)
            return
        memory_id = _item_id(self.memory.namespace, namespace, key)
        entry = {
            "id": memory_id,
            "content": content,
            "metadata": metadata,
            # each item is its own scope: two keys with the same text stay two memories
            "session_id": memory_id,
        }
        try:
            (stored,) = self.memory.remember_results([entry])
            if stored.created:
                return
        except ConflictError:  # another writer created the item meanwhile, other text
            pass
        # another writer created the item meanwhile (the insert found it): this put wins
        self.memory.update(memory_id, content=content, metadata=metadata)

    def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix = _check_namespace(op.namespace_prefix, allow_empty=True)
        limit, offset = _check_count("limit", op.limit), _check_count("offset", op.offset)
        if limit == 0:
            return []
        value_filter = _check_filter(op.filter)
        pushed = _prefix_filter(prefix)
        for name, want in value_filter.items():
            # string equality means the same on both backends: the store filters it; every
            # condition is still checked below (numbers, booleans, operators, nested dicts)
            if (
                isinstance(name, str)
                and isinstance(want, str)
                and "\x00" not in name + want
                and len(name) <= MAX_PUSHED_NAME
                and len(pushed) < MAX_METADATA_FILTER_KEYS
            ):
                pushed[VALUE_PREFIX + name] = want
        flt = {"metadata": pushed}
        everything_pushed = all(VALUE_PREFIX + k in pushed for k in value_filter)
        wanted = offset + limit
        found: list[SearchItem] = []
        if op.query is not None and op.query.strip():
            pool = min(wanted, MAX_LIMIT) if everything_pushed else MAX_LIMIT
            for hit in self.memory.recall(op.query, filters=flt, limit=pool):
                item = _item(hit.memory, score=hit.score)
                if _matches(item.value, value_filter):
                    found.append(item)
                    if len(found) >= wanted:
                        break
        else:
            for record in self._records(flt):
                item = _item(record)
                if _matches(item.value, value_filter):
                    found.append(item)
                    if len(found) >= wanted:
                        break
        return found[offset:wanted]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        limit, offset = _check_count("limit", op.limit), _check_count("offset", op.offset)
        conditions = tuple(op.match_conditions or ())
        pushed = _prefix_filter(())
        for condition in conditions:
            if condition.match_type not in ("prefix", "suffix"):
                raise InvalidInputError(
                    f"match_type must be 'prefix' or 'suffix', got {condition.match_type!r}"
                )
            _check_namespace(tuple(p for p in condition.path if p != "*"), allow_empty=True)
            if condition.match_type == "prefix":  # a label at a known depth: a metadata filter
                for depth, label in enumerate(condition.path[:MAX_DEPTH]):
                    if label != "*":
                        pushed[f"lg_ns_{depth}"] = label
        seen: set[tuple[str, ...]] = set()
        for record in self._records({"metadata": pushed}):
            namespace = tuple(record.metadata.get("lg_namespace", ()))
            if not all(_does_match(c, namespace) for c in conditions):
                continue
            if op.max_depth is not None:
                namespace = namespace[: op.max_depth]
            seen.add(namespace)
        return sorted(seen)[offset : offset + limit]

    def _records(self, filters: Mapping[str, Any]) -> Iterator[MemoryRecord]:
        cursor: str | None = None
        while True:
            page = self.memory.list(filters, cursor=cursor, limit=_PAGE)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor


# -- mapping -----------------------------------------------------------------------------------
def _ns_json(namespace: tuple[str, ...]) -> str:
    return json.dumps(list(namespace), ensure_ascii=False, separators=(",", ":"))


def _check_namespace(namespace: object, *, allow_empty: bool = False) -> tuple[str, ...]:
    if not isinstance(namespace, (tuple, list)):
        raise InvalidInputError(
            f"a LangGraph namespace must be a tuple of strings, got {type(namespace).__name__}"
        )
    labels = tuple(namespace)
    if not labels and not allow_empty:
        raise InvalidInputError("a LangGraph namespace must not be empty")
    if len(labels) > MAX_DEPTH:
        raise InvalidInputError(f"a LangGraph namespace has at most {MAX_DEPTH} labels")
    for label in labels:
        if not isinstance(label, str) or not label or "." in label or "\x00" in label:
            raise InvalidInputError(
                f"invalid LangGraph namespace label {label!r}: labels are non-empty strings "
                "without '.' or NUL"
            )
    return labels


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not key or "\x00" in key:
        raise InvalidInputError("a LangGraph key must be a non-empty string without NUL")
    return key


def _check_count(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInputError(f"{name} must be an integer >= 0, got {value!r}")
    return value


def _item_id(db_namespace: str, namespace: tuple[str, ...], key: str) -> str:
    """The memory id of a LangGraph item: a get is a primary-key lookup, not a scan."""
    digest = hashlib.sha256(
        json.dumps([db_namespace, list(namespace), key], ensure_ascii=False).encode()
    ).hexdigest()
    return f"lg_{digest[:40]}"


def _prefix_filter(prefix: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {MARKER: "langgraph"}
    for depth, label in enumerate(prefix):
        out[f"lg_ns_{depth}"] = label
    return out


def _metadata(namespace: tuple[str, ...], key: str, value: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {
        MARKER: "langgraph",
        "lg_ns": _ns_json(namespace),
        "lg_namespace": list(namespace),
        "lg_key": key,
    }
    for depth, label in enumerate(namespace):
        meta[f"lg_ns_{depth}"] = label
    # each value field is a top-level metadata key, so equality on it is a metadata filter
    meta.update({VALUE_PREFIX + name: field for name, field in value.items()})
    return meta


def _value(metadata: Mapping[str, Any]) -> dict[str, Any]:
    n = len(VALUE_PREFIX)
    return {k[n:]: v for k, v in metadata.items() if k.startswith(VALUE_PREFIX)}


def _content(value: Mapping[str, Any]) -> str:
    for name in _TEXT_FIELDS:
        text = value.get(name)
        if isinstance(text, str) and text.strip():
            return text
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _item(record: MemoryRecord, *, score: float | None = None) -> SearchItem:
    meta = record.metadata
    return SearchItem(
        namespace=tuple(meta.get("lg_namespace", ())),
        key=str(meta.get("lg_key", record.id)),
        value=_value(meta),
        created_at=record.created_at,
        updated_at=record.updated_at,
        score=score,
    )


def _check_filter(conditions: object) -> dict[str, Any]:
    if conditions is None:
        return {}
    if not isinstance(conditions, Mapping):
        raise InvalidInputError(f"filter must be a dict, got {type(conditions).__name__}")

    def walk(want: object) -> None:
        if isinstance(want, Mapping):
            for name, inner in want.items():
                if not isinstance(name, str):
                    raise InvalidInputError("filter keys must be strings")
                if name.startswith("$") and name not in _OPERATORS:
                    raise InvalidInputError(
                        f"unknown filter operator {name!r}; known: {', '.join(_OPERATORS)}"
                    )
                walk(inner)

    walk(conditions)
    return dict(conditions)


def _matches(value: Mapping[str, Any], conditions: Mapping[str, Any]) -> bool:
    return all(_compare(value.get(k), want) for k, want in conditions.items())


_OPERATORS = {
    "$eq": lambda a, b: a == b,
    "$ne": lambda a, b: a != b,
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def _compare(actual: Any, want: Any) -> bool:
    """LangGraph's filter semantics: equality, or ``{"$op": value, ...}`` comparisons."""
    if isinstance(want, Mapping) and want and all(str(k).startswith("$") for k in want):
        for name, operand in want.items():
            compare = _OPERATORS.get(name)
            if compare is None:
                raise InvalidInputError(
                    f"unknown filter operator {name!r}; known: {', '.join(_OPERATORS)}"
                )
            if name not in ("$eq", "$ne") and actual is None:
                return False
            try:
                if not compare(actual, operand):
                    return False
            except TypeError:
                return False
        return True
    if isinstance(want, Mapping):
        return isinstance(actual, Mapping) and all(
            _compare(actual.get(k), v) for k, v in want.items()
        )
    return bool(actual == want)


def _does_match(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    part = namespace[: len(path)] if condition.match_type == "prefix" else namespace[-len(path) :]
    if not path:
        return True
    return all(p == "*" or p == n for p, n in zip(path, part, strict=True))
