"""The web page's routes under ``/ui/``: server-rendered, calling the facade only.

Every page resolves the visitor from the signed session cookie (:mod:`.auth`), checked again
on each request, and reaches data through the same namespace-locked :class:`Tenant` as the
API (rate limits, recall counts and quotas included). Every state-changing form is a POST
carrying the session's CSRF token from this site's origin. Anything a visitor can send that
is wrong answers a 4xx page, never a 500.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ...consolidate import (
    ScopeStatus,
    configure_scope,
    consolidation_status,
    delete_trace,
    list_traces,
    memory_md_diff,
    memory_md_history,
    memory_summary,
    read_memory_md,
    reset_memory_md,
    strip_marker,
)
from ...consolidate.traces import check_scope, find_trace
from ...errors import EngramError, InvalidInputError, LLMError, NotFoundError, QuotaExceededError
from ...filters import parse_datetime
from ...memory import MAX_LIMIT, Mode
from ...sessions import list_sessions
from ...validation import check_limit
from ..errors import _ENGRAM_ERRORS, ApiError
from ..models import KeyIn
from ..tenant import Services, Tenant, services, tenant_for
from . import auth
from .render import environment, explain_rows, item_view, timeline, versions

router = APIRouter(prefix="/ui", include_in_schema=False)
env = environment()

MODES: dict[str, Mode] = {"hybrid": "hybrid", "text": "text", "vector": "vector"}
MAX_PREVIEW = 1000
"""The most memories one scoped-forget confirmation lists (and so deletes)."""
SESSION_PAGE = 200
MAX_FORM_FIELDS = 2 * MAX_PREVIEW + 50


class Form:
    """A url-encoded form body: ``get`` the first value of a field, ``all`` of them."""

    def __init__(self, fields: dict[str, list[str]] | None = None) -> None:
        self.fields = fields or {}

    def get(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return self.fields.get(name, [])


@dataclass
class Ctx:
    """One page request: the app's services, the visitor's session and the form sent."""

    request: Request
    svc: Services
    session: auth.UiSession | None
    form: Form

    @cached_property
    def tenant(self) -> Tenant:
        """The visitor's namespace-locked facade (admins: 403, they hold no data)."""
        assert self.session is not None
        return tenant_for(self.svc, self.session.principal)

    def arg(self, name: str) -> str | None:
        """A query parameter, ``None`` when absent or blank."""
        value = self.request.query_params.get(name)
        return value if value is not None and value.strip() else None

    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        session = self.session
        html = env.get_template(template).render(
            session=session,
            admin=session.admin if session else False,
            namespace=session.principal.key.namespace if session and session.principal.key else "",
            csrf=session.csrf if session else "",
            path=self.request.url.path,
            **context,
        )
        return HTMLResponse(html, status_code=status_code)


Page = Callable[..., Response]


def _error_page(ctx: Ctx, status: int, message: str) -> HTMLResponse:
    return ctx.render("error.html", status, status=status, message=message)


def _failure(exc: Exception) -> tuple[int, str] | None:
    """The status and message of an error a visitor caused (``None``: a server failure)."""
    if isinstance(exc, ApiError):
        return exc.status, exc.message
    if isinstance(exc, QuotaExceededError):
        return 429, str(exc)
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5]]
        return 422, "; ".join(parts)
    if isinstance(exc, LLMError):
        return 503, "the model endpoint is unavailable"
    if isinstance(exc, EngramError):
        for kind, status, _code in _ENGRAM_ERRORS:
            if isinstance(exc, kind):
                return (status, str(exc)) if status < 500 else None
    return None


async def _read_form(request: Request) -> Form:
    body = await request.body()
    try:
        text = body.decode("utf-8")
        fields = parse_qs(
            text, keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FORM_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidInputError("the form is not a valid url-encoded UTF-8 body") from None
    return Form(fields)


async def _serve(request: Request, page: Page, *args: Any, public: bool = False) -> Response:
    """Run ``page(ctx, *args)`` in the thread pool after the checks every page gets: the
    session (else: to the sign-in page), and for a POST the origin and the CSRF token."""
    svc = services(request)
    ctx = Ctx(request, svc, None, Form())
    try:
        if request.method == "POST":
            if not auth.same_origin(request):
                raise ApiError(403, "forbidden", "cross-site form posts are refused")
            ctx.form = await _read_form(request)
        return await run_in_threadpool(_run, ctx, page, args, public)
    except Exception as exc:
        failure = _failure(exc)
        if failure is None:
            raise
        return _error_page(ctx, *failure)


def _run(ctx: Ctx, page: Page, args: tuple[Any, ...], public: bool) -> Response:
    ctx.session = auth.current(ctx.request, ctx.svc)
    if ctx.session is None and not public:
        response = RedirectResponse("/ui/login", status_code=303)
        if auth.COOKIE in ctx.request.cookies:  # expired or revoked: drop it
            response.delete_cookie(
                auth.COOKIE, path=auth.COOKIE_PATH, httponly=True, samesite="strict"
            )
        return response
    session = None if public else ctx.session
    posted = ctx.request.method == "POST"
    if posted and session is not None and not auth.csrf_ok(session.csrf, ctx.form.get("csrf")):
        raise ApiError(403, "forbidden", "the form's CSRF token is missing or wrong")
    return page(ctx, *args)


def _to(path: str, **params: str | None) -> RedirectResponse:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return RedirectResponse(path + ("?" + query if query else ""), status_code=303)


def _limit(ctx: Ctx, default: int = 20) -> int:
    raw = ctx.arg("limit")
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        raise InvalidInputError(f"limit must be a whole number, got {raw!r}") from None
    checked = check_limit(value)
    assert checked is not None
    return checked


FILTER_FIELDS = ("user_id", "agent_id", "session_id", "tags", "since", "until")


def _filters(get: Callable[[str], str | None]) -> dict[str, Any]:
    """The memory filters of a query string or form (tags comma-separated); the facade
    checks them (a bad one is a 422 page)."""
    out: dict[str, Any] = {}
    for name in FILTER_FIELDS:
        value = get(name)
        if value is None or not value.strip():
            continue
        if name == "tags":
            out["tags"] = [t.strip() for t in value.split(",") if t.strip()]
        else:
            out[name] = value.strip()
    return out


def _filter_values(get: Callable[[str], str | None]) -> dict[str, str]:
    return {name: get(name) or "" for name in FILTER_FIELDS}


# -- signing in ----------------------------------------------------------------------------
@router.get("", include_in_schema=False)
@router.get("/")
async def home(request: Request) -> Response:
    def page(ctx: Ctx) -> Response:
        if ctx.session is None:
            return _to("/ui/login")
        return _to("/ui/keys" if ctx.session.admin else "/ui/memories")

    return await _serve(request, page, public=True)


def _login_form(ctx: Ctx, status: int = 200, message: str | None = None) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = ctx.render(
        "login.html",
        status,
        login_token=token,
        message=message,
        signed_out=ctx.arg("signed_out") is not None,
    )
    response.set_cookie(
        auth.LOGIN_COOKIE,
        token,
        max_age=900,
        path=auth.COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=ctx.request.url.scheme == "https",
    )
    return response


@router.get("/login")
async def login_page(request: Request) -> Response:
    def page(ctx: Ctx) -> Response:
        if ctx.session is not None:
            return _to("/ui/")
        return _login_form(ctx)

    return await _serve(request, page, public=True)


@router.post("/login")
async def login(request: Request) -> Response:
    def page(ctx: Ctx) -> Response:
        expected = ctx.request.cookies.get(auth.LOGIN_COOKIE)
        if not expected or not auth.csrf_ok(expected, ctx.form.get("csrf")):
            return _login_form(ctx, 403, "The sign-in form expired; please sign in again.")
        secret = (ctx.form.get("key") or "").strip()
        if not secret:
            return _login_form(ctx, 401, "Enter an API key.")
        try:
            who = ctx.svc.keys.authenticate({"x-api-key": secret})
        except ApiError as exc:
            return _login_form(ctx, exc.status, f"Sign-in refused: {exc.message}.")
        response = _to("/ui/")
        response.set_cookie(
            auth.COOKIE,
            auth.new_session(auth.signing_key(ctx.svc), who, secret),
            max_age=auth.MAX_AGE,
            path=auth.COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=ctx.request.url.scheme == "https",
        )
        response.delete_cookie(
            auth.LOGIN_COOKIE, path=auth.COOKIE_PATH, httponly=True, samesite="strict"
        )
        return response

    return await _serve(request, page, public=True)


@router.post("/logout")
async def logout(request: Request) -> Response:
    def page(ctx: Ctx) -> Response:
        response = _to("/ui/login", signed_out="1")
        response.delete_cookie(auth.COOKIE, path=auth.COOKIE_PATH, httponly=True, samesite="strict")
        return response

    return await _serve(request, page)


# -- memories ------------------------------------------------------------------------------
@router.get("/memories")
async def memories(request: Request) -> Response:
    def page(ctx: Ctx) -> Response:
        t = ctx.tenant
        query = ctx.request.query_params.get("q", "")
        mode = MODES.get(ctx.arg("mode") or "hybrid")
        if mode is None:
            raise InvalidInputError(f"mode must be one of {', '.join(MODES)}")
        limit = _limit(ctx)
        filters = _filters(ctx.arg)
        invalidated = ctx.arg("invalidated") is not None
        hits: list[dict[str, Any]] = []
        records = []
        next_link = None
        if query.strip():
            t.limiter.count_recall(t.key, t.ancestors)
            with t.recall_turn(mode):
                found = t.memory.recall(
                    query, filters=filters or None, limit=limit, mode=mode, explain=True
                )
            hits = [
                {"memory": h.memory, "score": h.score, "explain": explain_rows(h.explain)}
                for h in found
            ]
        else:
            listed = t.memory.list(
                filters or None,
                cursor=ctx.arg("cursor"),
                limit=limit,
                include_invalidated=invalidated,
            )
            records = listed.items
            if listed.next_cursor and len(records) == limit:
                params = {k: v for k, v in ctx.request.query_params.items() if k != "cursor"}
                next_link = "/ui/memories?" + urlencode({**params, "cursor": listed.next_cursor})
        return ctx.render(
            "memories.html",
            query=query,
            mode=mode,
            modes=MODES,
            limit=limit,
            values=_filter_values(ctx.arg),
            invalidated=invalidated,
            searched=bool(query.strip()),
            hits=hits,
            records=records,
            next_link=next_link,
            paged=ctx.arg("cursor") is not None,
        )

    return await _serve(request, page)


@router.get("/memories/{memory_id}")
async def memory(request: Request, memory_id: str) -> Response:
    def page(ctx: Ctx) -> Response:
        t = ctx.tenant
        record = t.memory.get(memory_id)
        return ctx.render(
            "memory.html",
            m=record,
            versions=versions(record, t.memory.history(memory_id)),
            events=t.memory.events(memory_id),
        )

    return await _serve(request, page)


@router.get("/memories/{memory_id}/forget")
async def memory_forget_confirm(request: Request, memory_id: str) -> Response:
    def page(ctx: Ctx) -> Response:
        record = ctx.tenant.memory.get(memory_id)
        return ctx.render(
            "confirm.html",
            title="Forget this memory?",
            message="It is removed from every index and from its history; this cannot be undone.",
            items=[record.content],
            action=f"/ui/memories/{memory_id}/forget",
            hidden={},
            button="Forget this memory",
            back=f"/ui/memories/{memory_id}",
        )

    return await _serve(request, page)


@router.post("/memories/{memory_id}/forget")
async def memory_forget(request: Request, memory_id: str) -> Response:
    def page(ctx: Ctx) -> Response:
        t = ctx.tenant
        record = t.memory.get(memory_id)
        result = t.memory.forget(memory_id)
        return ctx.render(
            "done.html",
            title="Forgotten",
            message=f"{result.count} memory removed.",
            removed=[(memory_id, record.content)],
        )

    return await _serve(request, page)


@router.get("/forget")
async def forget_preview(request: Request) -> Response:
    def page(ctx: Ctx) -> Response:
        t = ctx.tenant
        filters = _filters(ctx.arg)
        preview = None
        if filters:
            result = t.memory.forget(filters=filters, dry_run=True)
            shown = result.ids[:MAX_PREVIEW]
            preview = {
                "count": result.count,
                "ids": shown,
                "memories": [_content_or_none(t, i) for i in shown],
                "capped": result.count > len(shown),
            }
        return ctx.render(
            "forget.html", values=_filter_values(ctx.arg), preview=preview, max=MAX_PREVIEW
        )

    return await _serve(request, page)


def _content_or_none(t: Tenant, memory_id: str) -> tuple[str, str | None]:
    try:
        return memory_id, t.memory.get(memory_id).content
    except NotFoundError:
        return memory_id, None


@router.post("/forget")
async def forget_scoped(request: Request) -> Response:
    def page(ctx: Ctx) -> Response:
        t = ctx.tenant
        filters = _filters(ctx.form.get)
        if not filters:
            raise InvalidInputError("a scoped forget needs at least one filter")
        previewed = ctx.form.all("id")
        if len(previewed) > MAX_PREVIEW:
            raise InvalidInputError(f"at most {MAX_PREVIEW} memories per confirmation")
        # exactly what was previewed, and only what still matches the scope
        matching = set(t.memory.forget(filters=filters, dry_run=True).ids)
        removed: list[tuple[str, str | None]] = []
        for memory_id in previewed:
            if memory_id not in matching:
                continue
            try:
                content = t.memory.get(memory_id).content
                t.memory.forget(memory_id)
            except NotFoundError:
                continue  # forgotten meanwhile
            removed.append((memory_id, content))
        skipped = len(previewed) - len(removed)
        note = f" {skipped} previewed no longer matched or were gone." if skipped else ""
        return ctx.render(
            "done.html",
            title="Forgotten",
            message=f"{len(removed)} memories removed.{note}",
            removed=removed,
        )

    return await _serve(request, page)


# -- sessions ------------------------------------------------------------------------------
@router.get("/sessions")
async def sessions(request: Request) -> Response:
    def page(ctx: Ctx) -> Response:
        from ..v1 import _parse_session_cursor, _session_cursor

        t = ctx.tenant
        limit = _limit(ctx, 50)
        cursor = ctx.arg("cursor")
        before = _parse_session_cursor(t, cursor) if cursor else None
        found = list_sessions(t.memory.store, namespace=t.namespace, limit=limit, before=before)
        next_link = None
        if len(found) == limit:
            last = found[-1]
            sealed = _session_cursor(t, last.updated_at, last.session_id)
            next_link = "/ui/sessions?" + urlencode({"limit": limit, "cursor": sealed})
        return ctx.render("sessions.html", sessions=found, next_link=next_link)

    return await _serve(request, page)


def _session_id(ctx: Ctx) -> str:
    sid = ctx.arg("id") if ctx.request.method == "GET" else ctx.form.get("id")
    if not sid:
        raise InvalidInputError("which session? (id is missing)")
    return sid


@router.get("/session")
async def session(request: Request) -> Response:
    def page(ctx: Ctx) -> Response:
        s = ctx.tenant.session(_session_id(ctx))
        info = s.info()
        if info is None:
            raise NotFoundError(f"no session {s.session_id!r}")
        raw_after = ctx.arg("after")
        try:
            after = int(raw_after) if raw_after is not None else -1
        except ValueError:
            raise InvalidInputError("after must be a whole number") from None
        rows = s.items_after(after, SESSION_PAGE)
        items = [{"seq": seq, "at": at, **item_view(item)} for seq, at, item in rows]
        next_link = None
        if len(rows) == SESSION_PAGE:
            next_link = "/ui/session?" + urlencode({"id": s.session_id, "after": rows[-1][0]})
        return ctx.render("session.html", info=info, items=items, next_link=next_link)

    return await _serve(request, page)


@router.get("/session/{action}")
async def session_confirm(request: Request, action: str) -> Response:
    def page(ctx: Ctx) -> Response:
        s = ctx.tenant.session(_session_id(ctx))
        info = s.info()
        if info is None:
            raise NotFoundError(f"no session {s.session_id!r}")
        if action == "pop":
            newest = s.get_items(1)
            title, message = "Remove the newest item?", "The newest item of the session goes:"
            shown = [item_view(i).get("text") or item_view(i)["json"] for i in newest]
        elif action == "clear":
            title = "Clear this session?"
            message = f"All {info.item_count} items of the session go; the session stays."
            shown = []
        else:
            raise NotFoundError(f"no page /ui/session/{action}")
        back = "/ui/session?" + urlencode({"id": s.session_id})
        return ctx.render(
            "confirm.html",
            title=title,
            message=message,
            items=shown,
            action=f"/ui/session/{action}",
            hidden={"id": s.session_id},
            button=title.rstrip("?"),
            back=back,
        )

    return await _serve(request, page)


@router.post("/session/{action}")
async def session_change(request: Request, action: str) -> Response:
    def page(ctx: Ctx) -> Response:
        s = ctx.tenant.session(_session_id(ctx))
        info = s.info()
        if info is None:
            raise NotFoundError(f"no session {s.session_id!r}")
        if action == "pop":
            item = s.pop_item()
            removed = [("newest item", item_view(item)["json"])] if item is not None else []
            message = "1 item removed." if item is not None else "The session was empty."
        elif action == "clear":
            count = info.item_count
            s.clear_session()
            removed, message = [], f"{count} items removed; the session stays."
        else:
            raise NotFoundError(f"no page /ui/session/{action}")
        return ctx.render(
            "done.html",
            title="Session changed",
            message=message,
            removed=removed,
            back="/ui/session?" + urlencode({"id": s.session_id}),
        )

    return await _serve(request, page)


# -- knowledge -----------------------------------------------------------------------------
@router.get("/knowledge")
async def knowledge(request: Request) -> Response:
    def page(ctx: Ctx) -> Response:
        t = ctx.tenant
        entity = ctx.arg("entity")
        as_of_text = ctx.arg("as_of")
        as_of = parse_datetime("as_of", as_of_text) if as_of_text else None
        facts, neighbours, recent = [], [], []
        if entity is not None:
            history = as_of is None
            facts = t.memory.facts(entity, as_of=as_of, include_history=history, limit=MAX_LIMIT)
            facts += t.memory.facts(
                None, None, entity, as_of=as_of, include_history=history, limit=MAX_LIMIT
            )
            found = t.memory.neighbors(entity, depth=1)
            neighbours = sorted({x for f in found for x in (f.subject, f.object)} - {entity})
        else:
            recent = t.memory.facts(limit=50)
        return ctx.render(
            "knowledge.html",
            entity=entity or "",
            as_of=as_of_text or "",
            timeline=timeline(list({f.id: f for f in facts}.values()), as_of),
            neighbours=neighbours,
            recent=recent,
        )

    return await _serve(request, page)


# -- usage and keys ------------------------------------------------------------------------
@router.get("/usage")
async def usage(request: Request) -> Response:
    def page(ctx: Ctx) -> Response:
        from ..v1 import stats_of

        if ctx.session is not None and ctx.session.admin:
            return _to("/ui/keys")
        stats = stats_of(ctx.tenant)
        return ctx.render("usage.html", stats=stats)

    return await _serve(request, page)


def _keys(ctx: Ctx) -> list[Any]:
    from ..v1 import list_keys

    assert ctx.session is not None
    return list(list_keys(ctx.session.principal, ctx.svc, None).keys)


@router.get("/keys")
async def keys(request: Request) -> Response:
    def page(ctx: Ctx) -> Response:
        settings = ctx.request.app.state.settings
        found = _keys(ctx)
        namespaces: dict[str, dict[str, int]] = {}
        for k in found:
            counts = namespaces.setdefault(k.namespace, {"keys": 0, "active": 0})
            counts["keys"] += 1
            counts["active"] += k.revoked_at is None
        return ctx.render(
            "keys.html", keys=found, namespaces=namespaces, registration=settings.registration
        )

    return await _serve(request, page)


@router.post("/keys")
async def key_create(request: Request) -> Response:
    def page(ctx: Ctx) -> Response:
        from ..v1 import create_key

        assert ctx.session is not None
        body: dict[str, Any] = {"name": ctx.form.get("name") or ""}
        for field in ("purpose", "namespace"):
            value = (ctx.form.get(field) or "").strip()
            if value:
                body[field] = value
        made = create_key(ctx.session.principal, ctx.svc, KeyIn.model_validate(body))
        response = ctx.render("key_created.html", secret=made.api_key, key=made.key)
        return response

    return await _serve(request, page)


@router.get("/keys/{key_id}/revoke")
async def key_revoke_confirm(request: Request, key_id: str) -> Response:
    def page(ctx: Ctx) -> Response:
        key = next((k for k in _keys(ctx) if k.id == key_id), None)
        if key is None:
            raise NotFoundError(f"no key {key_id!r}")
        return ctx.render(
            "confirm.html",
            title="Revoke this key?",
            message="It stops working at once, on every replica (its web sessions too).",
            items=[f"{key.name} ({key.prefix}…, namespace {key.namespace})"],
            action=f"/ui/keys/{key_id}/revoke",
            hidden={},
            button="Revoke the key",
            back="/ui/keys",
        )

    return await _serve(request, page)


@router.post("/keys/{key_id}/revoke")
async def key_revoke(request: Request, key_id: str) -> Response:
    def page(ctx: Ctx) -> Response:
        from ..v1 import revoke_key

        assert ctx.session is not None
        revoked = revoke_key(ctx.session.principal, ctx.svc, key_id).key
        return ctx.render(
            "done.html",
            title="Key revoked",
            message=f"Key {revoked.name} ({revoked.prefix}…) no longer works.",
            removed=[],
            back="/ui/keys",
        )

    return await _serve(request, page)


# -- memory files: consolidation's scopes, MEMORY.md and traces -----------------------------
SCOPE_ACTIONS = {
    "reset": (
        "Reset this scope?",
        "Its MEMORY.md and skills go (memories, version history and files); its traces stay "
        "and the next consolidation starts afresh from them.",
        "Reset the scope",
    ),
    "disable": (
        "Disable this scope?",
        "Consolidation stops for it: no run calls a model until it is enabled again. Nothing "
        "is deleted.",
        "Disable consolidation",
    ),
    "enable": (
        "Enable this scope?",
        "Consolidation runs for it again (by hand, or on the server's schedule when on).",
        "Enable consolidation",
    ),
}
"""The scope page's actions: ``(title, what happens, button)``."""
SUMMARY_BUDGET = 32_000
"""Tokens of the routing summary the scope page shows (all of its lines)."""


def _scope_name(ctx: Ctx) -> str:
    """The scope a page is about: the ``scope`` query parameter (a form field for a POST),
    checked like the API checks it (a bad one is a 422 page)."""
    posted = ctx.request.method == "POST"
    raw = ctx.form.get("scope") if posted else ctx.request.query_params.get("scope")
    if raw is None or not raw.strip():
        raise InvalidInputError("which scope? (scope is missing)")
    return check_scope(raw)


def _scope_status(ctx: Ctx, scope: str) -> ScopeStatus:
    """The status of one of the namespace's scopes; 404 if the namespace has no such scope
    (never configured, consolidated or charged here: another namespace's is unknown)."""

    caps = ctx.request.app.state.settings.consolidate_caps
    report = consolidation_status(ctx.tenant.memory, caps=caps)
    found = next((s for s in report.scopes if s.scope == scope), None)
    if found is None:
        raise NotFoundError(f"no scope {scope!r} in this namespace")
    return found


def _scope_link(scope: str, page: str = "/ui/scope", **params: Any) -> str:
    return page + "?" + urlencode({"scope": scope, **params})


def _trace_session(ctx: Ctx) -> str:
    sid = ctx.arg("session") if ctx.request.method == "GET" else ctx.form.get("session")
    if not sid:
        raise InvalidInputError("which session's trace? (session is missing)")
    return sid


def _version_arg(ctx: Ctx, name: str) -> int | None:
    raw = ctx.arg(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInputError(f"{name} must be a version number, got {raw!r:.40}") from None
    if not 1 <= value <= 2**31:
        raise InvalidInputError(f"{name} must be a version number >= 1")
    return value


@router.get("/scopes")
async def scopes(request: Request) -> Response:
    def page(ctx: Ctx) -> Response:

        caps = ctx.request.app.state.settings.consolidate_caps
        report = consolidation_status(ctx.tenant.memory, caps=caps)
        return ctx.render("scopes.html", report=report)

    return await _serve(request, page)


@router.get("/scope")
async def scope_page(request: Request) -> Response:
    def page(ctx: Ctx) -> Response:

        t = ctx.tenant
        scope = _scope_name(ctx)
        status = _scope_status(ctx, scope)
        record = read_memory_md(t.memory, scope)
        history = memory_md_history(t.memory, scope)
        return ctx.render(
            "scope.html",
            scope=scope,
            status=status,
            memory_md=strip_marker(record.content) if record is not None else None,
            memory_md_id=record.id if record is not None else None,
            history=history,
            summary=memory_summary(t.memory, scope, budget_tokens=SUMMARY_BUDGET),
            traces=[_trace_view(r) for r in list_traces(t.memory, scope)],
            link=_scope_link,
        )

    return await _serve(request, page)


def _trace_view(record: Any) -> dict[str, Any]:
    return {
        "session_id": str(record.metadata.get("session_id") or record.session_id or ""),
        "summary": str(record.metadata.get("summary") or ""),
        "updated_at": record.updated_at,
        "memory_id": record.id,
        "content": record.content,
    }


def _diff_lines(text: str) -> list[tuple[str, str]]:
    """A unified diff's lines with their kind: ``file``, ``hunk``, ``add``, ``del`` or ``same``."""
    out = []
    for line in text.splitlines():
        if line.startswith(("--- ", "+++ ")):
            out.append(("file", line))
        elif line.startswith("@@"):
            out.append(("hunk", line))
        elif line.startswith("+"):
            out.append(("add", line))
        elif line.startswith("-"):
            out.append(("del", line))
        else:
            out.append(("same", line))
    return out


@router.get("/scope/diff")
async def scope_diff(request: Request) -> Response:
    def page(ctx: Ctx) -> Response:

        t = ctx.tenant
        scope = _scope_name(ctx)
        _scope_status(ctx, scope)
        history = memory_md_history(t.memory, scope)
        if not history:
            raise NotFoundError(f"scope {scope!r} has no MEMORY.md")
        old, new = _version_arg(ctx, "old"), _version_arg(ctx, "new")
        text = memory_md_diff(t.memory, scope, old=old, new=new)
        new_v = new if new is not None else history[0].version
        old_v = old if old is not None else new_v - 1
        shown = next(v for v in history if v.version == new_v)
        return ctx.render(
            "scope_diff.html",
            scope=scope,
            history=history,
            old=old_v,
            new=new_v,
            lines=_diff_lines(text),
            shown=shown,
            link=_scope_link,
        )

    return await _serve(request, page)


@router.get("/scope/{action}")
async def scope_confirm(request: Request, action: str) -> Response:
    def page(ctx: Ctx) -> Response:
        if action not in SCOPE_ACTIONS:
            raise NotFoundError(f"no page /ui/scope/{action}")
        scope = _scope_name(ctx)
        status = _scope_status(ctx, scope)
        title, message, button = SCOPE_ACTIONS[action]
        shown = [scope]
        if action == "reset" and status.memory_md_version is not None:
            shown.append(
                f"MEMORY.md version {status.memory_md_version}: {status.memory_md_lines} lines, "
                f"{status.memory_md_bytes} bytes"
            )
        return ctx.render(
            "confirm.html",
            title=title,
            message=message,
            items=shown,
            action=f"/ui/scope/{action}",
            hidden={"scope": scope},
            button=button,
            back=_scope_link(scope),
        )

    return await _serve(request, page)


@router.post("/scope/{action}")
async def scope_change(request: Request, action: str) -> Response:
    def page(ctx: Ctx) -> Response:
        from ..consolidation import _root

        if action not in SCOPE_ACTIONS:
            raise NotFoundError(f"no page /ui/scope/{action}")
        t = ctx.tenant
        scope = _scope_name(ctx)
        _scope_status(ctx, scope)
        if action == "reset":
            done = reset_memory_md(t.memory, root=_root(ctx.request, t), scope=scope)
            message = (
                "MEMORY.md and skills removed; the traces stay."
                if done
                else "Nothing to reset: the scope had no MEMORY.md or skills."
            )
            title = "Scope reset"
        else:
            settings = configure_scope(t.memory, scope, enabled=action == "enable")
            title = "Scope enabled" if settings.enabled else "Scope disabled"
            message = f"Consolidation is {'on' if settings.enabled else 'off'} for this scope."
        return ctx.render(
            "done.html", title=title, message=message, removed=[], back=_scope_link(scope)
        )

    return await _serve(request, page)


def _trace_record(ctx: Ctx) -> tuple[str, str, Any]:

    scope = _scope_name(ctx)
    session_id = _trace_session(ctx)
    record = find_trace(ctx.tenant.memory, session_id, scope=scope)
    if record is None:
        raise NotFoundError(f"session {session_id!r} has no trace in scope {scope!r}")
    return scope, session_id, record


@router.get("/trace")
async def trace_page(request: Request) -> Response:
    def page(ctx: Ctx) -> Response:
        scope, _, record = _trace_record(ctx)
        return ctx.render("trace.html", scope=scope, trace=_trace_view(record), link=_scope_link)

    return await _serve(request, page)


@router.get("/trace/delete")
async def trace_delete_confirm(request: Request) -> Response:
    def page(ctx: Ctx) -> Response:
        scope, session_id, record = _trace_record(ctx)
        view = _trace_view(record)
        return ctx.render(
            "confirm.html",
            title="Delete this trace?",
            message=(
                f"The trace of session {session_id} goes (memory, history and file) and the "
                "scope's routing summary is rebuilt without it. It is not made again unless "
                "the session goes on."
            ),
            items=[view["summary"] or view["content"]],
            action="/ui/trace/delete",
            hidden={"scope": scope, "session": session_id},
            button="Delete the trace",
            back=_scope_link(scope, "/ui/trace", session=session_id),
        )

    return await _serve(request, page)


@router.post("/trace/delete")
async def trace_delete(request: Request) -> Response:
    def page(ctx: Ctx) -> Response:
        from ..consolidation import _root

        t = ctx.tenant
        scope, session_id, record = _trace_record(ctx)
        delete_trace(t.memory, root=_root(ctx.request, t), scope=scope, session_id=session_id)
        return ctx.render(
            "done.html",
            title="Trace deleted",
            message=f"The trace of session {session_id} was removed.",
            removed=[(record.id, _trace_view(record)["summary"])],
            back=_scope_link(scope),
        )

    return await _serve(request, page)
