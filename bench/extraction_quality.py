"""Extraction quality on LoCoMo against a real model: opt-in, never part of ``make test``.

Runs against any OpenAI-compatible endpoint named by the environment (OpenAI, Ollama, vLLM,
LM Studio, llama.cpp server)::

    ENGRAMDB_LLM_BASE_URL=http://localhost:11434/v1 ENGRAMDB_LLM_MODEL=qwen2.5:7b \\
        .venv/bin/python -m bench extraction_quality

Without ``ENGRAMDB_LLM_MODEL`` it prints why it skipped and exits 0.

For each LoCoMo conversation (its own namespace): every dialog session's turns go through
``Memory.add_messages`` (one engramdb session per conversation; a first message per dialog
session gives its date), so the model extracts memories and decides add / update / delete /
none. Each extracted memory keeps its provenance (``metadata["source"]["seqs"]``: the session
items it came from), and a table maps each item's sequence number to its LoCoMo ``dia_id``.
Then each question (category 5, adversarial, skipped; as in bench/locomo.py) is answered by
``Memory.context(question)`` and one model call given that context:

- **evidence recall**: the share of the question's evidence turns that are in the provenance
  of the memories the context showed (averaged over questions), and the share of questions
  whose evidence turns are all covered;
- **answer F1**: token F1 of the model's answer against LoCoMo's (the usual QA metric; a
  rough measure, it penalises correct answers worded differently);
- **tokens**: what extraction (with decisions) and answering cost per conversation, as the
  endpoint reported them.

``ENGRAMDB_BENCH_CONVERSATIONS=N`` runs the first N conversations only.
"""

from __future__ import annotations

import os
import re
import string
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from bench.common import RESULTS, console, machine, today, write_results
from bench.locomo import EVIDENCE, locomo_path
from engramdb import Memory, Session
from engramdb.llm import Message
from engramdb.llm.openai_compat import OpenAICompatibleLLM

BUDGET_TOKENS = 800
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["answer"],
    "properties": {"answer": {"type": "string"}},
}
ANSWER_PROMPT = (
    "Answer the question from the memories given as data. Be brief (a few words). "
    'If the memories do not say, answer "unknown". Reply with JSON: {"answer": "..."}.'
)

HOW_TO_RUN = """\
## How to run

Opt-in (not in `make bench` or `make test`); needs an OpenAI-compatible endpoint:

```sh
# a local model with Ollama (https://ollama.com): `ollama pull qwen2.5:7b` first
ENGRAMDB_LLM_BASE_URL=http://localhost:11434/v1 ENGRAMDB_LLM_MODEL=qwen2.5:7b \\
    .venv/bin/python -m bench extraction_quality

# any other OpenAI-compatible server (vLLM, LM Studio, llama.cpp server, OpenAI)
ENGRAMDB_LLM_BASE_URL=http://localhost:8000/v1 ENGRAMDB_LLM_MODEL=MODEL \\
    ENGRAMDB_LLM_API_KEY=KEY .venv/bin/python -m bench extraction_quality

# a quicker look: the first 2 of the 10 conversations
ENGRAMDB_BENCH_CONVERSATIONS=2 ENGRAMDB_LLM_BASE_URL=... ENGRAMDB_LLM_MODEL=... \\
    .venv/bin/python -m bench extraction_quality
```

Without `ENGRAMDB_LLM_MODEL` the harness prints why it skipped and exits 0. Data:
`../shared/data/locomo10.json` (LoCoMo, Maharana et al. 2024, CC BY-NC 4.0). A run rewrites
this file with the results (and `extraction_quality.json`).

## Method

For each of the 10 LoCoMo conversations (its own namespace, embedder `auto`): each dialog
session's turns are passed to `Memory.add_messages` as user messages (`"Speaker: text"`,
image captions appended), after a first message giving the session's date and time; the
model extracts memories (facts, preferences, events, plans) and decides add / update /
delete / none against similar stored ones. Every memory keeps its provenance
(`metadata["source"]["seqs"]`, the session items it came from); a table maps item sequence
numbers to LoCoMo `dia_id`s. Each question (category 5, adversarial, skipped; questions
without evidence ids skipped) is answered by `Memory.context(question, budget_tokens=800)`
and one model call given that block.

- **evidence recall**: share of a question's evidence turns found in the provenance of the
  memories the context block showed, averaged over questions; **all evidence**: share of
  questions whose evidence turns were all covered.
- **answer F1**: token F1 of the model's answer against LoCoMo's answer (normalised:
  lower case, punctuation and articles removed).
- **tokens**: prompt + completion tokens as the endpoint reported them, for extraction
  (with the decision calls) and for answering, per conversation.
"""

NOT_RUN = """\
# Extraction quality on LoCoMo (real model)

**Not run here: no model endpoint in this environment** (the project's machines have no
model server and the tests use no hosted LLM). No numbers are reported until someone runs
it against a model; run it as below and this file is rewritten with the results.

"""


def endpoint() -> tuple[str, str | None] | None:
    """(model, base URL) from the environment, or ``None`` when no model is configured."""
    model = os.environ.get("ENGRAMDB_LLM_MODEL")
    if not model:
        return None
    return model, os.environ.get("ENGRAMDB_LLM_BASE_URL") or os.environ.get("OPENAI_BASE_URL")


def dialog_sessions(conversation: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Each dialog session as (its date line, [(dia_id, "Speaker: text"), ...])."""
    conv = conversation["conversation"]
    out = []
    n = 1
    while f"session_{n}" in conv:
        when = conv.get(f"session_{n}_date_time", "")
        said = []
        for turn in conv[f"session_{n}"]:
            text = f"{turn['speaker']}: {turn['text']}"
            if turn.get("blip_caption"):
                text += f" [image: {turn['blip_caption']}]"
            said.append((turn["dia_id"], text))
        out.append((f"[conversation session {n}, {when}]", said))
        n += 1
    return out


def qa_items(conversation: dict[str, Any]) -> list[tuple[str, str, set[str]]]:
    """(question, answer, evidence dia_ids) of the questions scored (see the module doc)."""
    out = []
    for qa in conversation["qa"]:
        if qa.get("category") == 5:
            continue
        evidence = {
            f"D{int(a)}:{int(b)}" for e in qa.get("evidence", []) for a, b in EVIDENCE.findall(e)
        }
        if evidence:
            out.append((qa["question"], str(qa.get("answer", "")), evidence))
    return out


def normalise(text: str) -> list[str]:
    text = "".join(c for c in text.lower() if c not in string.punctuation)
    return [w for w in text.split() if w not in ("a", "an", "the", "and")]


def token_f1(prediction: str, truth: str) -> float:
    pred, gold = normalise(prediction), normalise(truth)
    common = sum((Counter(pred) & Counter(gold)).values())
    if not pred or not gold or not common:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def provenance(memory: Memory, ids: tuple[str, ...], namespace: str) -> set[int]:
    """The session item numbers the memories ``ids`` were extracted from."""
    seqs: set[int] = set()
    for memory_id in ids:
        source = memory.get(memory_id, namespace=namespace).metadata.get("source")
        if isinstance(source, dict):
            seqs.update(s for s in source.get("seqs", []) if isinstance(s, int))
    return seqs


def run_conversation(
    memory: Memory, llm: OpenAICompatibleLLM, conversation: dict[str, Any], n: int
) -> dict[str, Any]:
    namespace, session_id = f"conv-{n}", f"locomo-{n}"
    session = Session(session_id, memory.store, namespace=namespace)
    dia_of_seq: dict[int, str] = {}
    before, start = llm.tokens_used, time.perf_counter()
    last = -1
    for header, said in dialog_sessions(conversation):
        messages = [{"role": "user", "content": header}]
        messages += [{"role": "user", "content": text} for _, text in said]
        memory.add_messages(messages, session_id=session_id, namespace=namespace)
        stored = session.items_after(last, limit=len(messages))
        for (seq, _, _), dia_id in zip(stored[1:], [d for d, _ in said], strict=True):
            dia_of_seq[seq] = dia_id
        last = stored[-1][0]
    extraction_tokens = llm.tokens_used - before
    extraction_s = time.perf_counter() - start
    memories = memory.stats(namespace=namespace).memories

    coverage: list[float] = []
    f1s: list[float] = []
    before = llm.tokens_used
    for question, answer, evidence in qa_items(conversation):
        context = memory.context(question, budget_tokens=BUDGET_TOKENS, namespace=namespace)
        found = {dia_of_seq.get(s, "") for s in provenance(memory, context.ids, namespace)}
        found.discard("")
        coverage.append(len(evidence & found) / len(evidence))
        reply = llm.complete_json(
            [
                Message("system", ANSWER_PROMPT),
                Message("user", f"{context.text or '(no memories)'}\n\nQuestion: {question}"),
            ],
            ANSWER_SCHEMA,
            name="answer",
        )
        f1s.append(token_f1(str(reply.data.get("answer", "")), answer))
    answer_tokens = llm.tokens_used - before
    questions = len(coverage)
    return {
        "conversation": namespace,
        "turns": len(dia_of_seq),
        "memories": memories,
        "questions": questions,
        "evidence_recall": round(sum(coverage) / questions, 4) if questions else 0.0,
        "all_evidence": round(sum(c == 1.0 for c in coverage) / questions, 4) if questions else 0,
        "answer_f1": round(sum(f1s) / questions, 4) if questions else 0.0,
        "extraction_tokens": extraction_tokens,
        "answer_tokens": answer_tokens,
        "extraction_s": round(extraction_s, 1),
    }


def run(model: str, base_url: str | None, limit: int | None = None) -> dict[str, Any]:
    data = orjson.loads(locomo_path().read_bytes())[:limit]
    llm = OpenAICompatibleLLM(model, base_url=base_url, timeout=300.0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        memory = Memory(Path(tmp) / "data", llm=llm)
        try:
            for n, conversation in enumerate(data):
                console.print(f"  conversation {n + 1}/{len(data)}")
                rows.append(run_conversation(memory, llm, conversation, n))
        finally:
            memory.close()
    questions = sum(r["questions"] for r in rows)
    weighted = lambda key: round(  # noqa: E731
        sum(r[key] * r["questions"] for r in rows) / questions, 4
    )
    return {
        "model": model,
        "base_url": re.sub(r"//[^/@]*@", "//***@", base_url or "(OpenAI default)"),
        "conversations": rows,
        "questions": questions,
        "evidence_recall": weighted("evidence_recall"),
        "all_evidence": weighted("all_evidence"),
        "answer_f1": weighted("answer_f1"),
        "extraction_tokens": sum(r["extraction_tokens"] for r in rows),
        "answer_tokens": sum(r["answer_tokens"] for r in rows),
        "date": today(),
        "machine": machine(),
    }


def main() -> None:
    found = endpoint()
    if found is None:
        console.print(
            "[bold]extraction_quality[/]: skipped, no model endpoint configured. Set "
            "ENGRAMDB_LLM_MODEL and ENGRAMDB_LLM_BASE_URL (any OpenAI-compatible server), e.g. "
            "ENGRAMDB_LLM_BASE_URL=http://localhost:11434/v1 ENGRAMDB_LLM_MODEL=qwen2.5:7b "
            "python -m bench extraction_quality"
        )
        return
    model, base_url = found
    limit = int(os.environ.get("ENGRAMDB_BENCH_CONVERSATIONS") or 0) or None
    console.print(f"[bold]extraction_quality[/]: LoCoMo with {model} at {base_url or 'OpenAI'}")
    payload = run(model, base_url, limit)
    rows = [
        [
            r["conversation"],
            str(r["turns"]),
            str(r["memories"]),
            str(r["questions"]),
            f"{r['evidence_recall']:.3f}",
            f"{r['all_evidence']:.3f}",
            f"{r['answer_f1']:.3f}",
            f"{r['extraction_tokens']:,}",
            f"{r['answer_tokens']:,}",
        ]
        for r in payload["conversations"]
    ]
    rows.append(
        [
            "all",
            "",
            "",
            str(payload["questions"]),
            f"{payload['evidence_recall']:.3f}",
            f"{payload['all_evidence']:.3f}",
            f"{payload['answer_f1']:.3f}",
            f"{payload['extraction_tokens']:,}",
            f"{payload['answer_tokens']:,}",
        ]
    )
    write_results(
        "extraction_quality",
        payload,
        [
            "conversation",
            "turns",
            "memories",
            "questions",
            "evidence recall",
            "all evidence",
            "answer F1",
            "extraction tokens",
            "answer tokens",
        ],
        rows,
        f"Extraction quality on LoCoMo ({payload['model']})",
        notes=HOW_TO_RUN,
        directory=RESULTS,
    )


def write_not_run(directory: Path = RESULTS) -> None:
    """The committed placeholder: no numbers, how to get them."""
    (directory / "extraction_quality.md").write_text(NOT_RUN + HOW_TO_RUN)


if __name__ == "__main__":
    main()
