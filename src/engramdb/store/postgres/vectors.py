"""pgvector values as engramdb's embedding bytes (little-endian float32), both ways.

engramdb passes embeddings around as raw float32 bytes. A :class:`Vector` wraps such bytes so
psycopg sends them as pgvector's binary format (no text round trip); vectors read back come as
the same raw bytes. Registration needs the ``vector`` type's oid, which differs per database.
"""

from __future__ import annotations

import struct

import numpy as np
import psycopg
from psycopg.adapt import AdaptersMap, Buffer, Dumper, Loader
from psycopg.pq import Format
from psycopg.types import TypeInfo

from ...errors import StoreUnavailableError


class Vector(bytes):
    """Embedding bytes (float32, little-endian) to be sent as a pgvector ``vector``."""

    @property
    def dim(self) -> int:
        return len(self) // 4


class _VectorDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: bytes) -> Buffer:
        values = np.frombuffer(obj, dtype="<f4")
        return struct.pack(">HH", len(values), 0) + values.astype(">f4").tobytes()


class _VectorBinaryLoader(Loader):
    format = Format.BINARY

    def load(self, data: Buffer) -> bytes:
        (dim,) = struct.unpack_from(">H", data)
        return np.frombuffer(data, dtype=">f4", count=dim, offset=4).astype("<f4").tobytes()


class _VectorTextLoader(Loader):
    format = Format.TEXT

    def load(self, data: Buffer) -> bytes:
        text = bytes(data).decode("ascii").strip("[]")
        values = np.array(text.split(",") if text else [], dtype=np.float64)
        return values.astype("<f4").tobytes()


def vector_adapters(conn: psycopg.Connection[tuple[object, ...]]) -> AdaptersMap:
    """Adapters for connections to ``conn``'s database, with pgvector registered."""
    info = TypeInfo.fetch(conn, "vector")
    if info is None:  # pragma: no cover - migrations create the extension first
        raise StoreUnavailableError("the pgvector type 'vector' is missing from this database")
    adapters = AdaptersMap(psycopg.adapters)
    dumper = type("VectorDumper", (_VectorDumper,), {"oid": info.oid})
    adapters.register_dumper(Vector, dumper)
    adapters.register_loader(info.oid, _VectorBinaryLoader)
    adapters.register_loader(info.oid, _VectorTextLoader)
    return adapters
