"""The web page (``/ui/``) and the offline API docs (``/docs``, ``/redoc``).

:func:`install_ui` adds them to the app: the pages (:mod:`.pages`), their static assets, the
Swagger UI and ReDoc assets shipped by the ``fastapi-offline`` package (served from here: the
docs work with no network), ``/`` redirecting to ``/ui/``, security headers on every page,
and the API-key security schemes in the OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from ..middleware import Message, Receive, Scope, Send

STATIC = Path(__file__).parent / "static"

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
"""The web page's Content-Security-Policy: this origin only, no inline script or style."""
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'self'"
)
"""The API docs' policy: Swagger UI and ReDoc set inline styles; scripts stay this origin's."""

SECURITY_SCHEMES = {
    "ApiKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API key (``egm_...``) in the X-API-Key header.",
    },
    "BearerKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "The same API key as ``Authorization: Bearer egm_...``.",
    },
}
PUBLIC_PATHS = {"/health", "/v1/limits"}
"""Operations that need no key."""
OPTIONAL_KEY_PATHS = {"/api/keys/register"}
"""Operations where a key is optional (registration: an admin key when the server asks)."""


class SecurityHeaders:
    """Adds the security headers to the web page's and the docs' responses: the CSP, no
    framing, no sniffing, no referrer to other sites (the same origin keeps its ``Origin``
    header, which form posts are checked against), and ``no-store`` for pages (they show a
    key's data)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == "/" or path.startswith(("/ui", "/docs", "/redoc"))):
            await self.app(scope, receive, send)
            return
        docs = path.startswith(("/docs", "/redoc"))
        static = path.startswith(("/ui/static/", "/docs/static/"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", (DOCS_CSP if docs else PAGE_CSP).encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                ]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _docs_page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/docs/static/favicon.png">
{body}
</html>"""
    )


def _with_security(app: FastAPI) -> Callable[[], dict[str, Any]]:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        keyed: list[dict[str, list[str]]] = [{"ApiKeyHeader": []}, {"BearerKey": []}]
        schema["security"] = keyed
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                if not isinstance(operation, dict):
                    continue
                if path in PUBLIC_PATHS:
                    operation["security"] = []
                elif path in OPTIONAL_KEY_PATHS:
                    operation["security"] = [{}, *keyed]
        app.openapi_schema = schema
        return schema

    return openapi


def install_ui(app: FastAPI) -> None:
    """Add the web page, the offline docs and ``/`` → ``/ui/`` to ``app`` (built with
    ``docs_url=None, redoc_url=None``)."""
    from ..._extras import require

    fastapi_offline = require("fastapi_offline", "server", "the web page")

    from .pages import router

    docs_assets = Path(str(fastapi_offline.__file__)).parent / "static"
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    app.mount("/docs/static", StaticFiles(directory=docs_assets), name="docs-static")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return _docs_page(
            f"{app.title} - API docs",
            '<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head><body>'
            f'<div id="swagger-ui" data-openapi="{app.openapi_url}"></div>'
            '<script src="/docs/static/swagger-ui-bundle.js"></script>'
            '<script src="/ui/static/swagger-init.js"></script></body>',
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return _docs_page(
            f"{app.title} - API reference",
            "</head><body>"
            f'<redoc spec-url="{app.openapi_url}"></redoc>'
            '<script src="/docs/static/redoc.standalone.js"></script></body>',
        )

    app.openapi = _with_security(app)  # type: ignore[method-assign]
    app.add_middleware(SecurityHeaders)


__all__ = ["install_ui"]
