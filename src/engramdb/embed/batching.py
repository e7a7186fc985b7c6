"""A micro-batcher: concurrent ``embed_documents`` calls embedded together.

A model embeds 8 texts in one call much faster than in 8 calls (one padded matrix product
instead of eight). The server's requests arrive on many threads at once, each with one or a
few texts; :class:`EmbedBatcher` wraps the server's embedder so that calls arriving within
``max_wait`` seconds of each other (or while the previous batch is being embedded) go to the
model as one call, and each caller gets back exactly its own rows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from ..errors import EngramError
from .base import Embedder, Vectors
from .openai_compat import EmbeddingError

log = logging.getLogger("engramdb.embed")


@dataclass(eq=False)
class _Request:
    texts: list[str]
    arrived: float
    future: Future[Vectors] = field(default_factory=Future)


class EmbedBatcher:
    """An :class:`~engramdb.embed.Embedder` that batches the ``embed_documents`` calls of
    concurrent threads into calls of the wrapped embedder.

    - A call waits at most ``max_wait`` seconds for others to join it (less when
      ``max_batch`` texts are waiting), plus the time the batch before it takes.
    - Each caller gets its own rows, in its own order; the vectors are the wrapped
      embedder's (a model that embeds a text the same alone or in a batch gives identical
      vectors).
    - A failed batch is retried caller by caller, so an error reaches only the caller whose
      texts caused it, as an :class:`~engramdb.errors.EmbeddingError` (other errors of the
      wrapped embedder are wrapped in one; its own typed errors pass through).
    - :meth:`close` embeds every call already waiting, then stops the batching thread; calls
      made after it go straight to the wrapped embedder.

    ``embed_query`` is not batched (a recall's query is embedded on its own thread).
    """

    def __init__(self, inner: Embedder, *, max_wait: float = 0.002, max_batch: int = 64) -> None:
        if max_wait < 0 or max_batch < 1:
            raise ValueError("max_wait must be >= 0 and max_batch >= 1")
        self.inner = inner
        self.model: str = inner.model
        self.dim: int = inner.dim
        self.max_wait = max_wait
        self.max_batch = max_batch
        self.calls = 0
        """Calls made to the wrapped embedder's ``embed_documents`` so far."""
        self._queue: deque[_Request] = deque()
        self._waiting = 0  # texts in the queue
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    # -- the Embedder protocol --------------------------------------------------------------
    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """The wrapped embedder's vectors for ``texts``, embedded with other threads' texts."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        request = _Request(list(texts), time.monotonic())
        with self._cond:
            if self._closed:
                return self._direct(request.texts)
            self._queue.append(request)
            self._waiting += len(request.texts)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="engramdb-embed-batcher", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return request.future.result()

    def chunk_spans(self, text: str) -> list[tuple[int, int]]:
        """The wrapped embedder's chunks of ``text`` (see :mod:`engramdb.embed.chunking`)."""
        from .chunking import chunk_spans

        return chunk_spans(self.inner, text)

    def embed_query(self, text: str) -> Vectors:
        """The wrapped embedder's query vector (not batched)."""
        return self.inner.embed_query(text)

    # -- lifecycle --------------------------------------------------------------------------
    def close(self, timeout: float | None = None) -> None:
        """Embed every call already waiting, then stop the batching thread (waiting at most
        ``timeout`` seconds for it). Later calls embed directly."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # -- the batching thread -----------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:  # closed and drained
                    return
                deadline = self._queue[0].arrived + self.max_wait
                while self._waiting < self.max_batch and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                batch = [self._queue.popleft()]
                size = len(batch[0].texts)
                while self._queue and size + len(self._queue[0].texts) <= self.max_batch:
                    size += len(self._queue[0].texts)
                    batch.append(self._queue.popleft())
                self._waiting -= size
            try:
                self._embed(batch)
            except BaseException as exc:  # never leave a caller waiting
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(_typed(exc))
                if not isinstance(exc, Exception):
                    raise

    def _embed(self, batch: list[_Request]) -> None:
        texts = [text for request in batch for text in request.texts]
        try:
            vectors = self._direct(texts)
        except Exception as exc:
            if len(batch) > 1:  # find whose texts fail: each caller alone
                for request in batch:
                    self._embed([request])
                return
            batch[0].future.set_exception(_typed(exc))
            return
        start = 0
        for request in batch:
            end = start + len(request.texts)
            request.future.set_result(vectors[start:end].copy())
            start = end

    def _direct(self, texts: list[str]) -> Vectors:
        self.calls += 1
        vectors = np.asarray(self.inner.embed_documents(texts), dtype=np.float32)
        if vectors.shape != (len(texts), self.dim):
            raise EmbeddingError(
                f"the embedder {self.model!r} answered {vectors.shape} vectors for "
                f"{len(texts)} texts of dimension {self.dim}"
            )
        return vectors


def _typed(exc: BaseException) -> EngramError:
    if isinstance(exc, EngramError):
        return exc
    error = EmbeddingError(f"embedding failed: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error
