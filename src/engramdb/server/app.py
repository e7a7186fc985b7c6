"""Application factory for ``engramdb serve``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from .. import __version__
from ..store import Store


def create_app(store: Store) -> FastAPI:
    """Build the ASGI app over an open store. The app keeps no state beyond the store."""
    app = FastAPI(title="engramdb", version=__version__)
    app.state.store = store

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness and the backend in use; needs no key."""
        return {"status": "healthy", "version": __version__, "store": store.url.split(":", 1)[0]}

    return app
