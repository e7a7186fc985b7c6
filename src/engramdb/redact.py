"""Secret redaction: applied before any text goes to a language model and before any
extracted text is stored.

:func:`redact` replaces each secret with ``[REDACTED:<kind>]``: provider API keys (OpenAI,
Anthropic, Google, Stripe), bearer and basic credentials in ``Authorization`` headers, AWS
access key ids and secret keys, GitHub / GitLab / Slack tokens, private key blocks, JWTs, the
password of ``scheme://user:password@host`` connection strings (user and host are kept), and
the value of ``password = …`` / ``token: …`` / ``"api_key": "…"`` style assignments.

It is tuned to leave ordinary text alone: prose ("a token of thanks"), source code
(``token = tokenizer.encode(text)``, ``password = None``, ``def check(password: str)``),
UUIDs, git and sha256 hashes, base64 data and URLs without a password survive untouched. A
field merely *about* a secret (``password_hint``, ``token_count``, ``max_tokens``) is not a
secret. Redacting redacted text changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["is_secret_key", "redact", "redact_json", "redact_report"]


def _marker(kind: str) -> str:
    return f"[REDACTED:{kind}]"


_NOT_REDACTED = r"(?!\[REDACTED:)"
_B = r"(?<![A-Za-z0-9_\-])"  # token start: not inside a longer word
_E = r"(?![A-Za-z0-9_\-])"  # token end

# A key *naming* a secret: the identifier ends with one of these words (any prefix, any case).
_SECRET_WORDS = (
    r"password|passwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|secret[_-]?key|private[_-]?key|client[_-]?secret|credentials?"
)
_KEY_NAME = re.compile(rf"(?i)^[A-Za-z0-9_.\-]*?(?:{_SECRET_WORDS})$")

_CODE_WORDS = frozenset(
    {"none", "null", "nil", "true", "false", "undefined", "str", "string", "int", "bytes"}
)


def is_secret_key(name: str) -> bool:
    """Whether a field or variable name names a secret (``password``, ``DB_PASSWORD``,
    ``client_secret``, ``access_token``, ``"api-key"``; not ``password_hint``, ``tokens``)."""
    return bool(_KEY_NAME.match(name.strip().strip("\"'")))


def _kind_of_key(name: str) -> str:
    low = name.lower().replace("-", "_")
    for word, kind in (
        ("client_secret", "client_secret"),
        ("private_key", "private_key"),
        ("secret_key", "secret"),
        ("access_key", "access_key"),
        ("apikey", "api_key"),
        ("api_key", "api_key"),
        ("passphrase", "password"),
        ("passwd", "password"),
        ("passcode", "password"),
        ("pin_code", "password"),
        ("password", "password"),
        ("token", "token"),
        ("secret", "secret"),
        ("credential", "credentials"),
    ):
        if word in low:
            return kind
    return "secret"  # pragma: no cover - every secret word is listed above


Replacer = Callable[["re.Match[str]"], str | None]
"""Returns the replacement, or ``None`` to keep the match as it is."""


def _whole(kind: str) -> Replacer:
    return lambda m: _marker(kind)


def _group(kind: str, group: int | str = "value") -> Replacer:
    """Replace one group of the match, keep the rest."""

    def replace(m: re.Match[str]) -> str:
        start, end = m.span(group)
        base = m.start()
        text = m.group(0)
        return text[: start - base] + _marker(kind) + text[end - base :]

    return replace


# -- specific formats (run first: they name the kind precisely) -------------------------------

_PRIVATE_KEY = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY((?: BLOCK)?)-----"
    r"[\s\S]*?(?:-----END \1PRIVATE KEY\2-----|\Z)"
)
_JWT = re.compile(_B + r"eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*" + _E)
_ANTHROPIC = re.compile(_B + r"sk-ant-(?:[a-z0-9]+-)?[A-Za-z0-9_\-]{20,}" + _E)
_OPENAI = re.compile(
    _B + r"sk-(?:proj-|svcacct-|admin-|None-)?(?=[A-Za-z0-9_\-]*[0-9])[A-Za-z0-9_\-]{20,}" + _E
)
_GOOGLE = re.compile(_B + r"AIza[0-9A-Za-z_\-]{35}" + _E)
_STRIPE = re.compile(_B + r"(?:sk|rk|whsec)_(?:live|test)_[A-Za-z0-9]{16,}" + _E)
_GITHUB = re.compile(
    _B + r"(?:(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})" + _E
)
_GITLAB = re.compile(_B + r"gl(?:pat|dt|rt|ptt|cbt)-[A-Za-z0-9_\-]{20,}" + _E)
_SLACK = re.compile(_B + r"(?:xox[abprs]-[A-Za-z0-9\-]{10,}|xapp-\d-[A-Za-z0-9\-]{10,})" + _E)
_AWS_KEY_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])")
_AWS_SECRET = re.compile(
    r"(?i)(?<![A-Za-z0-9])aws_?secret_?(?:access_?)?key[\"']?\s*(?:=|:)\s*[\"']?"
    + _NOT_REDACTED
    + r"(?P<value>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
)
_AUTH_HEADER = re.compile(
    r"(?i)\b(?P<scheme>bearer|basic|token)\s+" + _NOT_REDACTED + r"(?P<value>"
    r"(?=[A-Za-z0-9\-._~+/]*[0-9])[A-Za-z0-9\-._~+/]{8,}=*)(?![A-Za-z0-9\-._~+/=])"
)
_URL_PASSWORD = re.compile(
    r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s:/@]*:" + _NOT_REDACTED + r"(?P<value>[^\s@/]+)@"
)


def _auth_header(m: re.Match[str]) -> str | None:
    scheme = m.group("scheme").lower()
    if scheme != "bearer":  # "Basic …" / "token …" only right after an Authorization header
        before = m.string[max(0, m.start() - 40) : m.start()].lower()
        if "authorization" not in before:
            return None
    kind = "bearer_token" if scheme != "basic" else "basic_auth"
    return _group(kind)(m)


# -- key = value assignments -------------------------------------------------------------------

_ASSIGN = re.compile(
    rf"(?i)(?<![A-Za-z0-9_.\-])(?P<key>[\"']?[A-Za-z0-9_.\-]*?(?:{_SECRET_WORDS})[\"']?)"
    r"(?P<sep>[ \t]*(?::=|=>|=|:)[ \t]*)"
    r"(?:\"" + _NOT_REDACTED + r"(?P<dq>(?:[^\"\\\n]|\\.)+)\""
    r"|'" + _NOT_REDACTED + r"(?P<sq>(?:[^'\\\n]|\\.)+)'"
    r"|" + _NOT_REDACTED + r"(?P<value>[^\s\"'`,;(){}\[\]<>=:][^\s\"'`,;(){}\[\]<>]*))"
)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _assignment(m: re.Match[str]) -> str | None:
    key = m.group("key").strip("\"'")
    sep = m.group("sep").strip()
    kind = _kind_of_key(key)
    for quoted in ("dq", "sq"):
        if m.group(quoted) is not None:
            return _group(kind, quoted)(m)
    value = m.group("value")
    text = m.string
    after = text[m.end() : m.end() + 1]
    line_end = text.find("\n", m.end())
    rest = text[m.end() : len(text) if line_end == -1 else line_end].strip()
    if value.lower() in _CODE_WORDS or value.startswith(("$", "%", "#", "*", "@", "<")):
        return None  # None / null / a type annotation / ${VAR} / %(x)s / masked
    if after in ("(", "[", "{"):
        return None  # a call or subscript: code
    if value.endswith((".", ":")) and len(value) > 1:  # the end of a sentence: keep the stop
        start = m.start("value")
        return text[m.start() : start] + _marker(kind) + value[-1]
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+", value):
        return None  # a dotted name: self.secret, os.environ, settings.TOKEN
    if sep == ":":
        # "token: xyz" in prose or in a YAML line: only a value that looks like a secret (a
        # digit or a symbol in it, or long) or a whole "key: value" line.
        line_start = text.rfind("\n", 0, m.start()) + 1
        whole_line = not text[line_start : m.start()].strip() and not rest
        if re.fullmatch(r"[a-z_][a-z0-9_]*", value) and "_" in value:
            return None  # {"token": next_token}
        if not (whole_line or len(value) >= 16 or re.search(r"[0-9+/=!?$%&*~^-]", value)):
            return None
        return _group(kind)(m)
    # "=" forms: code assigns variables (token = next_token, secret = await fetch()),
    # configuration (.env, ini, shell) assigns literals (PASSWORD=hunter2).
    spaced = m.group("sep") != sep
    if spaced and _IDENT.fullmatch(value):
        if "_" in value and value.lower() == value:
            return None  # a snake_case variable: token = next_token
        if is_secret_key(value) or (rest and rest[0] not in ";,#"):
            return None  # self.token = token; token = await get_token()
    return _group(kind)(m)


# "my password is hunter2", "the API key was: abc123def": prose, so only a value that looks
# like a secret (letters and digits or symbols, 6+ characters).
_PROSE = re.compile(
    r"(?i)\b(?P<word>password|passwd|passphrase|passcode|pin code|api[ _-]?key|access[ _-]?key"
    r"|secret key|secret|token)s?\s+(?:is|was|are|were)(?:\s+now)?:?\s+[\"']?"
    + _NOT_REDACTED
    + r"(?P<value>[^\s\"'`,;()\[\]{}<>]{6,}?)[\"']?(?=[.!?]?(?:\s|$)|[,;)])"
)


def _prose(m: re.Match[str]) -> str | None:
    value = m.group("value")
    has_digit = bool(re.search(r"[0-9]", value))
    has_letter = bool(re.search(r"[A-Za-z]", value))
    has_symbol = bool(re.search(r"[^A-Za-z0-9]", value))
    if not ((has_digit and has_letter) or (has_symbol and (has_digit or has_letter))):
        return None
    if re.fullmatch(r"[0-9][0-9.,:/-]*", value) or re.fullmatch(r"[A-Za-z]+-[A-Za-z]+", value):
        return None  # a number, a date, a hyphenated word
    return _group(_kind_of_key(m.group("word").replace(" ", "_")))(m)


_RULES: tuple[tuple[str, re.Pattern[str], Replacer], ...] = (
    ("private_key", _PRIVATE_KEY, _whole("private_key")),
    ("jwt", _JWT, _whole("jwt")),
    ("anthropic_key", _ANTHROPIC, _whole("anthropic_key")),
    ("stripe_key", _STRIPE, _whole("stripe_key")),
    ("openai_key", _OPENAI, _whole("openai_key")),
    ("google_api_key", _GOOGLE, _whole("google_api_key")),
    ("github_token", _GITHUB, _whole("github_token")),
    ("gitlab_token", _GITLAB, _whole("gitlab_token")),
    ("slack_token", _SLACK, _whole("slack_token")),
    ("aws_access_key_id", _AWS_KEY_ID, _whole("aws_access_key_id")),
    ("aws_secret_access_key", _AWS_SECRET, _group("aws_secret_access_key")),
    ("auth_header", _AUTH_HEADER, _auth_header),
    ("connection_string_password", _URL_PASSWORD, _group("password")),
    ("assignment", _ASSIGN, _assignment),
    ("prose", _PROSE, _prose),
)

_KIND = re.compile(r"\[REDACTED:([a-z_]+)\]")


def redact_report(text: str) -> tuple[str, dict[str, int]]:
    """:func:`redact`, and how many secrets of each kind were replaced."""
    counts: dict[str, int] = {}
    if not text:
        return text, counts
    for _name, pattern, replacer in _RULES:

        def sub(m: re.Match[str], replacer: Replacer = replacer) -> str:
            out = replacer(m)
            if out is None:
                return m.group(0)
            for kind in _KIND.findall(out):
                counts[kind] = counts.get(kind, 0) + 1
            return out

        text = pattern.sub(sub, text)
    return text, counts


def redact(text: str) -> str:
    """``text`` with every secret replaced by ``[REDACTED:<kind>]`` (see the module doc)."""
    return redact_report(text)[0]


def redact_json(value: Any, *, _counts: dict[str, int] | None = None) -> Any:
    """A copy of a JSON value (session items, tool results) with secrets redacted: every
    string is passed through :func:`redact`, and the value of a field whose name names a
    secret (``{"password": "hunter2"}``, ``{"api_key": 1234}``) is replaced whole. Keys are
    kept; the input is not modified."""
    if isinstance(value, str):
        out, counts = redact_report(value)
        if _counts is not None:
            for kind, n in counts.items():
                _counts[kind] = _counts.get(kind, 0) + n
        return out
    if isinstance(value, Mapping):
        result: dict[Any, Any] = {}
        for key, item in value.items():
            if (
                isinstance(key, str)
                and is_secret_key(key)
                and isinstance(item, (str, int, float))
                and not isinstance(item, bool)
                and item != ""
                and not (isinstance(item, str) and item.startswith("[REDACTED:"))
            ):
                kind = _kind_of_key(key)
                result[key] = _marker(kind)
                if _counts is not None:
                    _counts[kind] = _counts.get(kind, 0) + 1
            else:
                result[key] = redact_json(item, _counts=_counts)
        return result
    if isinstance(value, (list, tuple)):
        return [redact_json(item, _counts=_counts) for item in value]
    return value
