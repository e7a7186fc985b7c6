"""The web page's memory files (issue 16 item 7): consolidation's scopes with their status,
jobs and spend; a scope's MEMORY.md (as text), its history and diff, the routing summary and
the traces; deleting a trace, resetting and enabling/disabling a scope; and the memory
manager's decisions on an extracted memory's page. The data comes from real consolidation
runs driven by a scripted model."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from engramdb.consolidate import configure_scope, consolidate, read_memory_md, scope_paths
from engramdb.consolidate.traces import trace_job_key
from engramdb.llm.base import Message
from engramdb.llm.fake import ScriptedLLM

from .conftest import Ui, csrf_of

SCOPE = "/home/dev/<script>alert('scope')</script>"
TRACE = (
    "## Task\nFix the build <script>alert('trace')</script>.\n\n## Outcome\nFixed.\n\n"
    "## Learnings\n- run `make test`\n"
)
MD_V1 = "# Project memory\n\n## Build\n- run `make test` <script>alert('md')</script>\n- use uv"
MD_V2 = MD_V1.replace("- use uv", "- use uv for the venv") + "\n- lint with `make lint`"


def _trace_answer(sessions: Sequence[str]) -> Any:
    """A scripted trace answer naming the session the prompt is about."""

    def answer(messages: Sequence[Message]) -> dict[str, str]:
        prompt = "\n".join(m.content for m in messages)
        sid = next(s for s in sessions if f"work in {s}." in prompt)
        return {"trace_memory": TRACE, "summary": f"summary of {sid} <img src=x onerror=alert(2)>"}

    return answer


def _consolidated(
    ui: Ui, key: str, sessions: Sequence[str] = ("s1", "s2"), md: str = MD_V1, scope: str = SCOPE
) -> None:
    """Sessions in ``key``'s namespace, consolidated into traces and a MEMORY.md."""
    for sid in sessions:
        r = ui.api(
            key,
            "POST",
            f"/v1/sessions/{sid}/items",
            json={"items": [{"role": "user", "content": f"work in {sid}."}]},
        )
        assert r.status_code == 201, r.text
    llm = ScriptedLLM([_trace_answer(sessions)] * len(sessions) + [{"memory_md": md, "skills": []}])
    assert ui.root is not None
    run = consolidate(ui.memory(key), llm, scope=scope, root=ui.root, idle_seconds=0)
    assert sorted(run.traces.summarized) == sorted(sessions), run
    assert run.memory_md is not None and run.memory_md.status == "consolidated", run.memory_md


def _q(path: str, **params: Any) -> str:
    return path + "?" + urlencode(params)


def _no_markup(html: str) -> None:
    assert "<script>alert" not in html and "<img src=x" not in html
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"


def test_issue16_memory_files_lists_scopes_with_status_jobs_and_spend(ui: Ui) -> None:
    key = ui.key()
    _consolidated(ui, key)
    memory = ui.memory(key)
    job_key = trace_job_key(SCOPE, "s9")
    job = memory.store.job_claim(memory.namespace, "trace", job_key, "test", 60)
    assert job is not None and job.token
    memory.store.job_fail(
        memory.namespace,
        "trace",
        job_key,
        job.token,
        "LLMUnavailableError: <b>down</b>",
        retry_in=0,
    )
    c = ui.browser(key)
    page = c.get("/ui/scopes")
    assert page.status_code == 200, page.text
    _no_markup(page.text)
    assert 'href="/ui/scopes" aria-current="page">Memory files</a>' in page.text
    link = "/ui/scope?" + urlencode({"scope": SCOPE}).replace("&", "&amp;")
    assert f'href="{link}"' in page.text
    assert "<bdi>/home/dev/&lt;script&gt;alert(&#39;scope&#39;)&lt;/script&gt;</bdi>" in page.text
    row = page.text.split(link)[1].split("</tr>")[0]
    assert "<td>enabled</td>" in row and "<td>2</td>" in row  # traces
    assert "version 1, 5 lines" in row
    assert "trace pending (1/5): <bdi" in row and "LLMUnavailableError: &lt;b&gt;down" in row
    assert "3 calls" in row  # two traces and the MEMORY.md, today and in all
    assert re.search(r"Spent today \(UTC day [\d-]+\): 3 model calls", page.text)


def test_issue16_scope_page_shows_memory_md_as_text_history_summary_and_traces(ui: Ui) -> None:
    key = ui.key()
    _consolidated(ui, key)
    c = ui.browser(key)
    page = c.get("/ui/scope", params={"scope": SCOPE})
    assert page.status_code == 200, page.text
    _no_markup(page.text)
    html = page.text
    assert "<h1>Scope <bdi>/home/dev/&lt;script&gt;" in html
    # MEMORY.md is escaped, preformatted text (its scope marker line is not shown)
    assert "- run `make test` &lt;script&gt;alert(&#39;md&#39;)&lt;/script&gt;" in html
    assert '<pre class="memory-md"><bdi># Project memory' in html and "<!-- engramdb" not in html
    assert "diff from nothing</a>" in html and "<td>1</td>" in html  # the version history
    summary = html.split('<pre class="summary">')[1].split("</pre>")[0]
    assert "summary of s1 &lt;img" in summary and "summary of s2" in summary
    assert "(trace: `s1`" in summary
    traces = html.split('<table class="list traces">')[1].split("</table>")[0]
    assert 'href="/ui/session?id=s1"' in traces and 'href="/ui/session?id=s2"' in traces
    trace_link = _q("/ui/trace", scope=SCOPE, session="s1").replace("&", "&amp;")
    assert f'href="{trace_link}">read</a>' in traces


def test_issue16_scope_diff_between_memory_md_versions(ui: Ui) -> None:
    key = ui.key()
    _consolidated(ui, key)
    _consolidated(ui, key, sessions=("s3",), md=MD_V2)
    c = ui.browser(key)
    page = c.get("/ui/scope", params={"scope": SCOPE})
    assert "lint with `make lint`" in page.text
    diff_link = _q("/ui/scope/diff", scope=SCOPE, new=2).replace("&", "&amp;")
    assert f'href="{diff_link}">diff with version 1</a>' in page.text
    diff = c.get("/ui/scope/diff", params={"scope": SCOPE, "new": 2})
    assert diff.status_code == 200, diff.text
    _no_markup(diff.text)
    assert "version 1 → 2</h1>" in diff.text
    assert '<span class="del"><bdi>-- use uv</bdi></span>' in diff.text
    assert '<span class="add"><bdi>+- use uv for the venv</bdi></span>' in diff.text
    assert '<span class="add"><bdi>+- lint with `make lint`</bdi></span>' in diff.text
    assert '<span class="file"><bdi>--- MEMORY.md@1</bdi></span>' in diff.text
    assert '<option value="1" selected>' in diff.text  # the versions to compare
    first = c.get("/ui/scope/diff", params={"scope": SCOPE, "old": 2, "new": 1})
    assert '<span class="del"><bdi>-- lint with `make lint`</bdi></span>' in first.text
    same = c.get("/ui/scope/diff", params={"scope": SCOPE, "old": 2, "new": 2})
    assert "No changes between these versions." in same.text
    missing = c.get("/ui/scope/diff", params={"scope": SCOPE, "old": 7})
    assert missing.status_code == 404 and "no MEMORY.md version 7" in missing.text


def test_issue16_trace_page_then_delete_the_trace_with_confirmation(ui: Ui) -> None:
    key = ui.key()
    _consolidated(ui, key)
    c = ui.browser(key)
    page = c.get("/ui/trace", params={"scope": SCOPE, "session": "s1"})
    assert page.status_code == 200, page.text
    _no_markup(page.text)
    assert "Fix the build &lt;script&gt;alert(&#39;trace&#39;)&lt;/script&gt;." in page.text
    assert "summary of s1 &lt;img" in page.text and 'href="/ui/session?id=s1"' in page.text
    confirm = c.get("/ui/trace/delete", params={"scope": SCOPE, "session": "s1"})
    assert confirm.status_code == 200 and "Delete this trace?" in confirm.text
    assert 'name="session" value="s1"' in confirm.text
    assert 'name="scope" value="/home/dev/&lt;script&gt;' in confirm.text
    assert ui.root is not None
    files = scope_paths(ui.root, ui.namespace(key), SCOPE).trace_summaries
    assert sum(p.name.startswith("s1_") for p in files.iterdir()) == 1
    done = c.post(
        "/ui/trace/delete",
        data={"csrf": csrf_of(confirm.text), "scope": SCOPE, "session": "s1"},
    )
    assert done.status_code == 200 and "The trace of session s1 was removed." in done.text
    traces = ui.api(key, "GET", "/v1/traces", params={"scope": SCOPE}).json()["traces"]
    assert [t["session_id"] for t in traces] == ["s2"]
    assert not any(p.name.startswith("s1_") for p in files.iterdir())
    after = c.get("/ui/scope", params={"scope": SCOPE}).text
    assert "summary of s1" not in after and "summary of s2" in after
    gone = c.get("/ui/trace", params={"scope": SCOPE, "session": "s1"})
    assert gone.status_code == 404


def test_issue16_reset_scope_removes_memory_md_and_skills_keeps_traces(ui: Ui) -> None:
    key = ui.key()
    _consolidated(ui, key)
    assert ui.root is not None
    paths = scope_paths(ui.root, ui.namespace(key), SCOPE)
    assert paths.memory_md.exists()
    c = ui.browser(key)
    confirm = c.get("/ui/scope/reset", params={"scope": SCOPE})
    assert confirm.status_code == 200 and "Reset this scope?" in confirm.text
    assert "MEMORY.md version 1: 5 lines" in confirm.text
    done = c.post("/ui/scope/reset", data={"csrf": csrf_of(confirm.text), "scope": SCOPE})
    assert done.status_code == 200 and "MEMORY.md and skills removed" in done.text
    assert read_memory_md(ui.memory(key), SCOPE) is None and not paths.memory_md.exists()
    assert ui.api(key, "GET", "/v1/memory-md", params={"scope": SCOPE}).status_code == 404
    assert len(ui.api(key, "GET", "/v1/traces", params={"scope": SCOPE}).json()["traces"]) == 2
    page = c.get("/ui/scope", params={"scope": SCOPE})
    assert page.status_code == 200 and "No MEMORY.md yet" in page.text
    assert "summary of s2" in page.text  # the traces stay


def test_issue16_disable_then_enable_scope(ui: Ui) -> None:
    key = ui.key()
    _consolidated(ui, key)
    c = ui.browser(key)
    page = c.get("/ui/scope", params={"scope": SCOPE})
    assert "Consolidation <strong>enabled</strong>" in page.text
    confirm = c.get("/ui/scope/disable", params={"scope": SCOPE})
    assert "Disable this scope?" in confirm.text
    done = c.post("/ui/scope/disable", data={"csrf": csrf_of(confirm.text), "scope": SCOPE})
    assert done.status_code == 200 and "Scope disabled" in done.text
    [status] = ui.api(key, "GET", "/v1/consolidate/status").json()["scopes"]
    assert status["enabled"] is False
    page = c.get("/ui/scope", params={"scope": SCOPE})
    assert "Consolidation <strong>disabled</strong>" in page.text and "Enable…" in page.text
    done = c.post("/ui/scope/enable", data={"csrf": csrf_of(page.text), "scope": SCOPE})
    assert "Scope enabled" in done.text
    [status] = ui.api(key, "GET", "/v1/consolidate/status").json()["scopes"]
    assert status["enabled"] is True


def test_issue16_memory_files_posts_need_the_csrf_token(ui: Ui) -> None:
    key = ui.key()
    _consolidated(ui, key)
    c = ui.browser(key)
    token = csrf_of(c.get("/ui/scope", params={"scope": SCOPE}).text)
    posts = [
        ("/ui/trace/delete", {"scope": SCOPE, "session": "s1"}),
        ("/ui/scope/reset", {"scope": SCOPE}),
        ("/ui/scope/disable", {"scope": SCOPE}),
    ]
    for path, data in posts:
        assert c.post(path, data=data).status_code == 403, path
        assert c.post(path, data={**data, "csrf": token + "x"}).status_code == 403, path
        cross = c.post(
            path, data={**data, "csrf": token}, headers={"Origin": "http://evil.example"}
        )
        assert cross.status_code == 403, path
    assert len(ui.api(key, "GET", "/v1/traces", params={"scope": SCOPE}).json()["traces"]) == 2
    [status] = ui.api(key, "GET", "/v1/consolidate/status").json()["scopes"]
    assert status["enabled"] is True and status["memory_md_version"] == 1


def test_issue16_memory_files_of_another_namespace_answer_404(ui: Ui) -> None:
    a, b = ui.key("a"), ui.key("b")
    _consolidated(ui, a)
    c = ui.browser(b)
    listing = c.get("/ui/scopes")
    assert listing.status_code == 200 and "No scope yet" in listing.text
    assert "/home/dev/" not in listing.text
    gets = [
        _q("/ui/scope", scope=SCOPE),
        _q("/ui/scope/diff", scope=SCOPE),
        _q("/ui/scope/reset", scope=SCOPE),
        _q("/ui/scope/disable", scope=SCOPE),
        _q("/ui/trace", scope=SCOPE, session="s1"),
        _q("/ui/trace/delete", scope=SCOPE, session="s1"),
    ]
    for path in gets:
        r = c.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert "Project memory" not in r.text and "summary of" not in r.text
    token = csrf_of(listing.text)
    for path, data in [
        ("/ui/trace/delete", {"scope": SCOPE, "session": "s1"}),
        ("/ui/scope/reset", {"scope": SCOPE}),
        ("/ui/scope/disable", {"scope": SCOPE}),
        ("/ui/scope/enable", {"scope": SCOPE}),
    ]:
        assert c.post(path, data={**data, "csrf": token}).status_code == 404, path
    # a's scope is untouched, b got no scope settings
    [status] = ui.api(a, "GET", "/v1/consolidate/status").json()["scopes"]
    assert status["enabled"] and status["traces"] == 2 and status["memory_md_version"] == 1
    assert ui.api(b, "GET", "/v1/consolidate/status").json()["scopes"] == []


def test_issue16_memory_files_bad_input_answers_4xx_never_500(ui: Ui) -> None:
    key = ui.key()
    _consolidated(ui, key)
    c = ui.browser(key)
    weird = ["", " ", "\x00", "a\nb", "x" * 600, "%FF", "🧠", "<script>"]
    for path in ("/ui/scope", "/ui/scope/diff", "/ui/scope/reset", "/ui/trace"):
        for value in weird:
            r = c.get(path, params={"scope": value, "session": "s1"})
            assert 400 <= r.status_code < 500, (path, value, r.status_code)
    for name in ("old", "new"):
        for value in ["abc", "0", "-1", "1e9", "99999999999", "3"]:
            r = c.get("/ui/scope/diff", params={"scope": SCOPE, name: value})
            assert r.status_code in (404, 422), (name, value, r.status_code)
    for session in ["", "nope", "\x00", "x" * 5000]:
        r = c.get("/ui/trace", params={"scope": SCOPE, "session": session})
        assert r.status_code in (404, 422), (session, r.status_code)
    assert c.get("/ui/scope/explode", params={"scope": SCOPE}).status_code == 404
    token = csrf_of(c.get("/ui/scopes").text)
    for path, data in [
        ("/ui/scope/explode", {"scope": SCOPE}),
        ("/ui/scope/reset", {}),
        ("/ui/scope/reset", {"scope": "\x00"}),
        ("/ui/trace/delete", {"scope": SCOPE}),
        ("/ui/trace/delete", {"scope": SCOPE, "session": "nope"}),
    ]:
        r = c.post(path, data={**data, "csrf": token})
        assert 400 <= r.status_code < 500, (path, data, r.status_code)
    assert len(ui.api(key, "GET", "/v1/traces", params={"scope": SCOPE}).json()["traces"]) == 2


def test_issue16_memory_files_pages_send_csp_and_link_from_the_memory_page(ui: Ui) -> None:
    key = ui.key()
    _consolidated(ui, key)
    c = ui.browser(key)
    for path in [
        "/ui/scopes",
        _q("/ui/scope", scope=SCOPE),
        _q("/ui/scope/diff", scope=SCOPE),
        _q("/ui/trace", scope=SCOPE, session="s2"),
        _q("/ui/scope/reset", scope=SCOPE),
    ]:
        r = c.get(path)
        assert r.status_code == 200, path
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["cache-control"] == "no-store"
        _no_markup(r.text)
        assert not re.search(r"<[^>]+\son\w+\s*=", r.text), f"inline handler on {path}"
    # MEMORY.md and traces are memories too: their pages lead to the scope
    md = read_memory_md(ui.memory(key), SCOPE)
    assert md is not None
    page = c.get(f"/ui/memories/{md.id}")
    link = _q("/ui/scope", scope=SCOPE).replace("&", "&amp;")
    assert f'Made by consolidation: a MEMORY.md of scope <a href="{link}">' in page.text


def _fact(content: str, seq: int) -> dict[str, object]:
    return {
        "type": "preference",
        "content": content,
        "about": "user",
        "occurred_at": None,
        "source_seqs": [seq],
        "importance": 0.7,
    }


def test_issue16_extracted_memory_shows_its_decision_and_source_items(ui_llm: Ui) -> None:
    assert ui_llm.llm is not None
    key = ui_llm.key()
    ui_llm.llm.add({"memories": [_fact("Ada prefers <b>green</b> tea", 1)], "triples": []})
    said = ui_llm.api(
        key,
        "POST",
        "/v1/memories/extract",
        json={
            "session_id": "chat-<1>",
            "user_id": "ada",
            "messages": [
                {"role": "user", "content": "hello"},
                {"role": "user", "content": "I prefer green tea"},
            ],
        },
    )
    assert said.status_code == 200, said.text
    [applied] = [a for a in said.json()["applied"] if a.get("memory_id")]
    c = ui_llm.browser(key)
    page = c.get(f"/ui/memories/{applied['memory_id']}")
    assert page.status_code == 200
    _no_markup(page.text)
    row = page.text.split('<table class="events">')[1].split("</table>")[0]
    assert "<td>add</td>" in row  # the decision
    assert "<td><bdi>scripted</bdi> (v1)</td>" in row  # by which model and prompt version
    [reason] = re.findall(r"<td>add</td><td><bdi>([^<]+)</bdi></td>", row)
    assert reason.strip()
    session = 'href="/ui/session?id=chat-%3C1%3E"'
    assert session in row
    item = 'href="/ui/session?id=chat-%3C1%3E&amp;after=0#item-1">item 1</a>'
    assert item in row  # the session item it was extracted from
    view = c.get("/ui/session", params={"id": "chat-<1>", "after": 0})
    assert 'id="item-1"' in view.text and "I prefer green tea" in view.text


def test_issue16_memories_list_marks_extracted_and_consolidated_memories(ui_llm: Ui) -> None:
    assert ui_llm.llm is not None
    key = ui_llm.key()
    ui_llm.llm.add({"memories": [_fact("Ada prefers green tea", 0)], "triples": []})
    said = ui_llm.api(
        key,
        "POST",
        "/v1/memories/extract",
        json={"session_id": "chat-<1>", "messages": [{"role": "user", "content": "tea"}]},
    )
    assert said.status_code == 200, said.text
    ui_llm.api(key, "POST", "/v1/memories", json={"content": "stored directly"})
    configure_scope(ui_llm.memory(key), SCOPE, session_prefix="s")  # not the chat
    _consolidated(ui_llm, key, sessions=("s1",))
    c = ui_llm.browser(key)
    for path in ("/ui/memories", "/ui/memories?q=tea&mode=text"):
        page = c.get(path).text
        _no_markup(page)
        tea = page.split("Ada prefers green tea")[1].split("</li>")[0]
        origin = tea.split('<span class="origin">')[1].split("</span>")[0]
        assert origin.startswith("extracted") and " from session <a " in origin
        assert 'href="/ui/session?id=chat-%3C1%3E"><bdi>chat-&lt;1&gt;</bdi>' in origin
    listed = c.get("/ui/memories", params={"limit": 50}).text
    direct = listed.split("stored directly")[1].split("</li>")[0]
    assert 'class="origin"' not in direct
    scope_link = _q("/ui/scope", scope=SCOPE).replace("&", "&amp;")
    assert f'<span class="origin">consolidation trace of <a href="{scope_link}">' in listed
    assert f'<span class="origin">consolidation MEMORY.md of <a href="{scope_link}">' in listed
