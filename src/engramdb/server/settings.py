"""Server settings: command line > ``ENGRAMDB_*`` environment > TOML config file > defaults."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from ..errors import InvalidInputError
from ..memory import MAX_CONTENT_CHARS
from ..validation import MAX_QUERY_CHARS

if TYPE_CHECKING:
    from ..consolidate.budget import CostCaps
    from ..search.recall import RecallSettings

CONFIG_ENV = "ENGRAMDB_CONFIG"


class Quotas(BaseModel):
    """Per-key limits; ``None`` is unlimited. A key's own limits override these defaults."""

    model_config = ConfigDict(extra="forbid")

    max_memories: int | None = Field(default=None, ge=0)
    max_facts: int | None = Field(default=None, ge=0)
    recalls_per_day: int | None = Field(default=None, ge=0)
    requests_per_second: int | None = Field(default=None, ge=1)


LIMIT_NAMES = tuple(Quotas.model_fields)


class ServerSettings(BaseSettings):
    """Everything ``engramdb serve`` can be told. See docs/server.md for each setting."""

    model_config = SettingsConfigDict(env_prefix="ENGRAMDB_", extra="forbid")

    store: str = ".engramdb"
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    embedder: str = "auto"
    embed_batch_ms: float = Field(default=2.0, ge=0, le=1000)
    """Concurrent remembers wait at most this long (milliseconds) to be embedded together in
    one model call (see :class:`~engramdb.embed.EmbedBatcher`); 0 still batches the calls that
    arrive while a batch is running, without waiting."""
    embed_batching: bool = True
    """Batch the embeddings of concurrent requests (off: each request embeds on its own)."""
    registration: Literal["open", "admin", "closed"] = "open"
    admin_keys: Annotated[list[str], NoDecode] = []
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_content_chars: int = Field(default=MAX_CONTENT_CHARS, ge=1, le=10_000_000)
    max_query_chars: int = Field(default=MAX_QUERY_CHARS, ge=1, le=1_000_000)
    registrations_per_minute: int | None = Field(default=10, ge=1)
    """Open registrations (``/api/keys/register``) per client address and minute, with bursts
    of as many; ``None`` turns the limit off."""
    max_memories: int | None = Field(default=None, ge=0)
    max_facts: int | None = Field(default=None, ge=0)
    recalls_per_day: int | None = Field(default=None, ge=0)
    requests_per_second: int | None = Field(default=None, ge=1)
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    graceful_timeout: float = Field(default=30.0, ge=0)
    llm: str | None = None
    """The model for ``POST /v1/memories/extract`` and the server-run manager:
    ``"openai:MODEL"`` (any OpenAI-compatible endpoint; base URL and key from
    ``ENGRAMDB_LLM_BASE_URL`` / ``ENGRAMDB_LLM_API_KEY`` or ``OPENAI_BASE_URL`` /
    ``OPENAI_API_KEY``). ``None``: no model; extraction with ``infer`` answers 409."""
    extract_sessions: bool = False
    """Run a memory manager in the server: items appended through
    ``POST /v1/sessions/{id}/items`` are extracted into memories in the background (needs
    ``llm``)."""
    extract_every_turns: int | None = Field(default=5, ge=1)
    """The server-run manager extracts a session after this many new user messages
    (``None``: not on a count)."""
    extract_idle_seconds: float | None = Field(default=60.0, gt=0)
    """... and when a session with unextracted items got none for this long (``None``: off)."""

    memory_root: str | None = None
    """Where consolidation writes ``MEMORY.md``, ``memory_summary.md`` and trace files
    (``None``: ``memories/`` beside a SQLite store, else ``./.engramdb/memories``)."""
    consolidate_every_seconds: float | None = Field(default=None, ge=60)
    """Run consolidation in the background every this many seconds for every enabled scope
    of every namespace (``engramdb memory-md`` / ``PUT /v1/consolidate/scopes/{scope}``
    configures scopes). ``None`` (the default): off; runs happen only when asked for."""
    consolidate_idle_seconds: float = Field(default=3600.0, ge=0)
    """A session becomes a trace once it got no new item for this long."""
    consolidate_run_max_sessions: int | None = Field(default=20, ge=0)
    consolidate_run_max_input_tokens: int | None = Field(default=200_000, ge=0)
    consolidate_run_max_llm_calls: int | None = Field(default=40, ge=0)
    consolidate_day_max_sessions: int | None = Field(default=100, ge=0)
    consolidate_day_max_input_tokens: int | None = Field(default=1_000_000, ge=0)
    consolidate_day_max_llm_calls: int | None = Field(default=200, ge=0)
    """Cost caps of consolidation per run and per UTC day of a namespace (``None``: none)."""

    index_metadata: Annotated[list[str], NoDecode] = []
    """Metadata keys whose values are full-text indexed (none by default: ids and labels
    kept in metadata do not match queries). From the environment: comma separated. After a
    change, existing memories keep their index until reindexed (``Memory.reindex``)."""
    index_neighbors: bool = True
    """Index each session memory with its neighbours' text (see ``Memory(index_neighbors)``)."""
    recall: dict[str, Any] = {}
    """How recall ranks: any :class:`~engramdb.RecallSettings` field (lane weights,
    ``fusion``, ``rrf_k``, ``neighbor_weight``, ``session_decay``, ``session_cap``, ...). TOML:
    a ``[server.recall]`` table; environment: ``ENGRAMDB_RECALL`` as a JSON object."""

    @field_validator("index_metadata", mode="before")
    @classmethod
    def _split_index_keys(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment: comma separated
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("recall")
    @classmethod
    def _recall_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        from ..search.recall import RecallSettings

        known = set(RecallSettings.__dataclass_fields__)
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(
                f"unknown recall setting {unknown[0]!r}; choose from {', '.join(sorted(known))}"
            )
        RecallSettings(**value)  # InvalidInputError (a ValueError) names a bad value
        return value

    @property
    def recall_settings(self) -> RecallSettings:
        """:attr:`recall` as the :class:`~engramdb.RecallSettings` the server's memory uses."""
        from ..search.recall import RecallSettings

        return RecallSettings(**self.recall)

    @field_validator("llm")
    @classmethod
    def _known_llm(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from ..llm import resolve_llm

        resolve_llm(value)  # InvalidInputError (a ValueError) names what is wrong
        return value.strip()

    @field_validator("admin_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment: comma separated
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("admin_keys")
    @classmethod
    def _long_enough(cls, value: list[str]) -> list[str]:
        for key in value:
            if len(key) < 16:
                raise ValueError("admin keys must be at least 16 characters long")
        return value

    @property
    def quotas(self) -> Quotas:
        return Quotas(
            max_memories=self.max_memories,
            max_facts=self.max_facts,
            recalls_per_day=self.recalls_per_day,
            requests_per_second=self.requests_per_second,
        )

    @property
    def consolidate_caps(self) -> CostCaps:
        from ..consolidate.budget import Caps, CostCaps

        return CostCaps(
            run=Caps(
                self.consolidate_run_max_sessions,
                self.consolidate_run_max_input_tokens,
                self.consolidate_run_max_llm_calls,
            ),
            day=Caps(
                self.consolidate_day_max_sessions,
                self.consolidate_day_max_input_tokens,
                self.consolidate_day_max_llm_calls,
            ),
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # the config file is applied by load_settings, below the environment
        return init_settings, env_settings


def load_settings(config: str | Path | None = None, **overrides: Any) -> ServerSettings:
    """Settings from a TOML file (``config`` or ``$ENGRAMDB_CONFIG``), the environment and
    ``overrides`` (command-line options; ``None`` values are ignored), in rising precedence.

    Raises :class:`InvalidInputError` naming the bad setting.
    """
    import os

    path = config if config is not None else os.environ.get(CONFIG_ENV)
    from_file: dict[str, Any] = {}
    if path:
        try:
            from_file = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise InvalidInputError(f"cannot read config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInputError(f"config file {path} is not valid TOML: {exc}") from None
        from_file = from_file.get("server", from_file)
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        env_only = ServerSettings()  # environment over defaults
        env_set = env_only.model_fields_set
        merged = {**from_file, **{k: getattr(env_only, k) for k in env_set}, **given}
        settings = ServerSettings.model_validate(merged) if merged else env_only
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise InvalidInputError(f"setting {where}: {first['msg']}") from None
    if settings.extract_sessions and settings.llm is None:
        raise InvalidInputError(
            "setting extract_sessions: needs a model; set llm (ENGRAMDB_LLM=openai:MODEL)"
        )
    return settings
