"""Issue 15 item 2 over HTTP: ``as_of`` on recall, and the window in the explain view."""

from __future__ import annotations

from tests.server.conftest import Api


def test_issue15_temporal_recall_as_of_over_http(api: Api) -> None:
    call = api.as_key(api.key())
    for content, when in (
        ("bought bike lights, a bike lock and a bike bag", "2026-10-03T12:00:00Z"),
        ("bought a new bike at the shop", "2026-11-28T15:00:00Z"),
    ):
        r = call("POST", "/v1/memories", json={"content": content, "occurred_at": when})
        assert r.status_code == 201, r.text
    body = {
        "query": "which bike things were bought last weekend?",
        "mode": "text",
        "explain": True,
        "as_of": "2026-12-02T10:00:00Z",
    }
    r = call("POST", "/v1/memories/recall", json=body)
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert hits[0]["memory"]["content"] == "bought a new bike at the shop"
    time = hits[0]["explain"]["time"]
    assert (time["since"], time["until"]) == (
        "2026-11-28T00:00:00Z",
        "2026-11-30T00:00:00Z",
    )
    # a bad as_of is a 422 naming the field, never a 500
    for bad in ("yesterday", 20261202, "0000-01-01T00:00:00", True):
        r = call("POST", "/v1/memories/recall", json={**body, "as_of": bad})
        assert r.status_code == 422, (bad, r.text)
        assert "as_of" in r.text
    # the edges of the calendar: expressions past year 1 or 9999 give no window, no error
    for edge in ("0001-01-01T00:00:00Z", "9999-12-31T23:00:00Z"):
        query = "bike last year next year yesterday last weekend two weeks ago last summer"
        r = call("POST", "/v1/memories/recall", json={"query": query, "as_of": edge})
        assert r.status_code == 200, (edge, r.text)
