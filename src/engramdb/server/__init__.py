"""The engramdb memory server (FastAPI)."""

from .._extras import require

for _module in ("fastapi", "pydantic_settings", "jinja2", "fastapi_offline"):
    require(_module, "server", "the engramdb server")

from .app import create_app  # noqa: E402

__all__ = ["create_app"]
