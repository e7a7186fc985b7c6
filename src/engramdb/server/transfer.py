"""``/v1`` routes of export and import: the key's namespace as the JSON Lines export file
(docs/export-format.md), and such a file imported into it.

Both go through the facade's :meth:`~engramdb.memory.Memory.export` and
:meth:`~engramdb.memory.Memory.import_file`, on a view locked to the key's namespace: a file's
namespace record is mapped to the key's namespace, and a file of several namespaces is refused
(422), so a key never reads or writes another namespace.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from .errors import ApiError
from .tenant import Tenant, blocking, tenant
from .v1 import ERRORS

router = APIRouter(prefix="/v1", responses=ERRORS, tags=["export"])

NDJSON = "application/x-ndjson"
SPOOL_BYTES = 1 << 20
"""An import body up to this size is held in memory; a larger one goes to a temporary file
(the body is bounded by the server's ``max_body_bytes``, a 413 beyond)."""
CHUNK_BYTES = 1 << 16
"""Export lines are sent in chunks of about this size."""


class ImportOut(BaseModel):
    """What an import wrote (``created``) and found already there (``skipped``), per kind
    (``memories``, ``history``, ``triples``, ``events``, ``sessions``, ``session_items``)."""

    namespaces: list[str]
    created: dict[str, int]
    skipped: dict[str, int]
    legacy: bool
    records: int


def _chunks(records: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    buffer = bytearray()
    for record in records:
        buffer += orjson.dumps(record) + b"\n"
        if len(buffer) >= CHUNK_BYTES:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The export file: JSON Lines, header first and ``end`` last.",
            "content": {NDJSON: {"schema": {"type": "string"}}},
        }
    },
)
async def export(
    request: Request,
    with_vectors: Annotated[
        bool, Query(description="Include the embeddings (base64 float32).")
    ] = False,
) -> StreamingResponse:
    """Everything of the key's namespace (memories with their history, facts, events,
    sessions with their items) as the versioned JSON Lines export file of
    docs/export-format.md. Streamed: the store is read a page at a time while the answer is
    sent, so the server never holds the whole file; a file cut short (no ``end`` record)
    says the transfer failed."""
    t: Tenant = await blocking(request, lambda: tenant(request))
    records = t.memory.export(with_vectors=with_vectors)
    return StreamingResponse(_chunks(records), media_type=NDJSON)


@router.post(
    "/import",
    response_model=ImportOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "An export file (JSON Lines), as ``GET /v1/export`` or "
            "``engramdb export`` writes it.",
            # the body is read as JSON Lines whatever its type; text/plain is listed for
            # clients (and fuzzers) that have no serializer for application/x-ndjson
            "content": {
                NDJSON: {"schema": {"type": "string"}},
                "text/plain": {"schema": {"type": "string"}},
            },
        }
    },
)
async def import_(request: Request) -> ImportOut:
    """Import an export file (the body, JSON Lines) into the key's namespace: its namespace
    record is mapped to the key's namespace (a file of several namespaces is refused).
    Idempotent: ids are kept, what is already there is skipped. The whole body is checked
    first: a bad line is a 422 naming its line number, and nothing is stored. The writing
    pass is one transaction checked against the key's quota (``max_memories``,
    ``max_facts``) as ``remember`` is: over it, a 429 and nothing stored. The body is bounded
    by the server's ``max_body_bytes`` (413); an empty body is a 422."""
    t: Tenant = await blocking(request, lambda: tenant(request))  # 401/403/429 first
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        empty = True
        async for chunk in request.stream():
            spool.write(chunk)
            empty = empty and not chunk.strip()
        if empty:
            raise ApiError(
                422, "invalid_input", "the body is empty: send an export file (JSON Lines)"
            )
        spool.seek(0)
        report = await blocking(
            request,
            lambda: t.memory.import_file(spool, quota=t.quota),
        )
    return ImportOut(
        namespaces=report.namespaces,
        created=report.created,
        skipped=report.skipped,
        legacy=report.legacy,
        records=report.records,
    )
