"""The engramdb memory server (FastAPI)."""

from .app import create_app

__all__ = ["create_app"]
