"""Issue 15 item 7: a local model from a file outside any package (what the LoCoMo bench
registers for the int8 L3 model it quantises), and the default model's name."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engramdb.embed import EmbeddingError
from engramdb.embed.local import DEFAULT_MODEL, MODELS, LocalEmbedder, LocalModel, _model_file


@pytest.fixture
def registered() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        MODELS.pop(name, None)


def test_issue15_embedder_model_file_outside_a_package(
    tmp_path: Path, registered: list[str]
) -> None:
    assert DEFAULT_MODEL == "minilm-l6-int8"
    copy = tmp_path / "copy.onnx"
    shutil.copyfile(_model_file(MODELS[DEFAULT_MODEL]), copy)
    MODELS["test-copy"] = LocalModel("", "", None, path=copy)
    MODELS["test-missing"] = LocalModel("", "", None, path=tmp_path / "absent.onnx")
    registered += ["test-copy", "test-missing"]
    texts = ["Coco chewed my shoes", "My pottery class went well"]
    same = LocalEmbedder("test-copy").embed_documents(texts)
    assert np.allclose(same, LocalEmbedder().embed_documents(texts), atol=1e-5)
    assert LocalEmbedder("test-copy").model == "local:test-copy"
    with pytest.raises(EmbeddingError, match=r"absent\.onnx"):
        LocalEmbedder("test-missing")
