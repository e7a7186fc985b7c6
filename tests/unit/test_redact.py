"""Secret redaction: every kind is caught in prose, JSON and code; ordinary text survives."""

from __future__ import annotations

import json

import pytest

from engramdb.redact import is_secret_key, redact, redact_json, redact_report

# Fake secrets, shaped like the real ones.
OPENAI = "sk-4f9aZ8c2Lq7XbT1mN3vR6pW0yK5sD8gHj2Qe7Uo1"
OPENAI_PROJ = "sk-proj-Q2w3E4r5T6y7U8i9O0pAsDfGhJkLzXcVbNm_12-ab"
ANTHROPIC = "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe9Dc8Ba7-_xyzAA"
GOOGLE = "AIzaSyD4f9aZ8c2Lq7XbT1mN3vR6pW0yK5sD8gH"
GITHUB = "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"
GITHUB_PAT = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
GITLAB = "glpat-xY9wV8uT7sR6qP5oN4mL"
SLACK = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx"
STRIPE = "sk_live_51HqLyjWDarjtT1zdp7dcXYZ"
STRIPE_RK = "rk_live_51HqLyjWDarjtT1zdp7dcXYZ"
AWS_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_STS = "ASIAY34FZKBOKMUTVV7A"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
BEARER = "d1e8a70b5ccab1dc2f56bbf7e99f064a660c08e361a35751b9c483c88943d082"
PRIVATE_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi1dPmT8Fz+2q1yQ3gG\n"
    "kX8q9J2v7R1wLz0pP4uYk5aH6sBn3cT4dU5eV6fW7gX8hY9iZ0jA1kB2\n"
    "-----END RSA PRIVATE KEY-----"
)
OPENSSH_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----"
)

# (text, the secret that must disappear, the kind reported)
POSITIVES: list[tuple[str, str, str]] = [
    (f"my key is {OPENAI}, use it", OPENAI, "openai_key"),
    (f'OPENAI_API_KEY="{OPENAI_PROJ}"', OPENAI_PROJ, "openai_key"),
    (f'client = OpenAI(api_key="{OPENAI_PROJ}")', OPENAI_PROJ, "openai_key"),
    (f"anthropic: {ANTHROPIC}", ANTHROPIC, "anthropic_key"),
    (f'{{"google": "{GOOGLE}"}}', GOOGLE, "google_api_key"),
    (f"https://maps.googleapis.com/api?key={GOOGLE}&q=x", GOOGLE, "google_api_key"),
    (f"push with {GITHUB} please", GITHUB, "github_token"),
    (f"token {GITHUB_PAT}", GITHUB_PAT, "github_token"),
    (f"gho_{'a1' * 18} and", f"gho_{'a1' * 18}", "github_token"),
    (f"GITLAB_TOKEN={GITLAB}", GITLAB, "gitlab_token"),
    (f"slack bot {SLACK}", SLACK, "slack_token"),
    (f"stripe.api_key = '{STRIPE}'", STRIPE, "stripe_key"),
    (f"restricted {STRIPE_RK}", STRIPE_RK, "stripe_key"),
    (f"aws id {AWS_ID} in us-east-1", AWS_ID, "aws_access_key_id"),
    (f"AWS_ACCESS_KEY_ID={AWS_STS}", AWS_STS, "aws_access_key_id"),
    (f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET, "aws_secret_access_key"),
    (f'"AWS_SECRET_ACCESS_KEY": "{AWS_SECRET}"', AWS_SECRET, "aws_secret_access_key"),
    (f"the session cookie was {JWT} yesterday", JWT, "jwt"),
    (f'curl -H "Authorization: Bearer {BEARER}" https://api.x', BEARER, "bearer_token"),
    (f"authorization: bearer {BEARER}", BEARER, "bearer_token"),
    ("Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy", "basic_auth"),
    (
        f"here:\n{PRIVATE_KEY}\nthanks",
        "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi1dPmT8Fz",
        "private_key",
    ),
    (f"{OPENSSH_KEY}", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ", "private_key"),
    (
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC (truncated",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
        "private_key",
    ),
    ("DATABASE_URL=postgres://app:s3cr3t-pw@db.internal:5432/app", "s3cr3t-pw", "password"),
    ("connect to mongodb+srv://admin:Tr0ub4dor@cluster0.x.net/db", "Tr0ub4dor", "password"),
    ("redis://:hunter2@localhost:6379/0", "hunter2", "password"),
    ("password=hunter2", "hunter2", "password"),
    ("DB_PASSWORD=swordfish", "swordfish", "password"),
    ("export API_TOKEN=abc123xyz", "abc123xyz", "token"),
    ('password = "correct horse battery staple"', "correct horse battery staple", "password"),
    ("passwd: 'it''s'", "it''s", "password"),
    ('{"password": "p@ss w0rd!"}', "p@ss w0rd!", "password"),
    ('{"user": "ana", "api_key": "abcd-1234-efgh"}', "abcd-1234-efgh", "api_key"),
    ("  client_secret: 9f8e7d6c5b4a\n  other: 1", "9f8e7d6c5b4a", "client_secret"),
    ("password: swordfish", "swordfish", "password"),
    ("secret: x9!kq", "x9!kq", "secret"),
    ("my password is set: password=Winter2024!", "Winter2024!", "password"),
    ("apikey => 'zz-top-9'", "zz-top-9", "api_key"),
    ("access_key := AbCdEf012345", "AbCdEf012345", "access_key"),
    ('settings.token = "tok-77"', "tok-77", "token"),
    ("--password=Hunter22", "Hunter22", "password"),
]


@pytest.mark.parametrize(("text", "secret", "kind"), POSITIVES)
def test_issue11_redacts_secrets(text: str, secret: str, kind: str) -> None:
    out, counts = redact_report(text)
    assert secret not in out, out
    assert f"[REDACTED:{kind}]" in out
    assert counts.get(kind, 0) >= 1
    assert redact(text) == out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "postgres://app:s3cret@db:5432/app",
            "postgres://app:[REDACTED:password]@db:5432/app",
        ),
        (
            f"Authorization: Bearer {BEARER}",
            "Authorization: Bearer [REDACTED:bearer_token]",
        ),
        ("PASSWORD=hunter2 # prod", "PASSWORD=[REDACTED:password] # prod"),
        ("I set password=hunter2. Then", "I set password=[REDACTED:password]. Then"),
        ("the api_key is: abc123def.", "the api_key is: [REDACTED:api_key]."),
        ("My password is hunter2!", "My password is [REDACTED:password]!"),
        ("my API key was 'x9-kq-77z', sorry", "my API key was '[REDACTED:api_key]', sorry"),
        ("My token: 9f8e7d6c.", "My token: [REDACTED:token]."),
        ('{"password": "x", "user": "ana"}', '{"password": "[REDACTED:password]", "user": "ana"}'),
        (f"a {OPENAI} b {GITHUB} c", "a [REDACTED:openai_key] b [REDACTED:github_token] c"),
        (f"x\n{PRIVATE_KEY}\ny", "x\n[REDACTED:private_key]\ny"),
    ],
)
def test_issue11_redaction_keeps_the_surroundings(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_issue11_redaction_counts_by_kind() -> None:
    text = f"{OPENAI} {OPENAI_PROJ} {GITHUB} password=hunter2 postgres://u:pw@h/db"
    out, counts = redact_report(text)
    assert counts == {"openai_key": 2, "github_token": 1, "password": 2}
    assert out.count("[REDACTED:") == 5


NEGATIVES = [
    "",
    "Thanks, that was a token of thanks for the help.",
    "Each token costs money; the tokenizer splits words into tokens.",
    "The secret to good bread is time.",
    "Remember the password: it is long and nobody knows it",
    "She is the bearer of good news.",
    "We had a basic 2024 plan.",
    "I asked for a refund last Tuesday and it was approved on 2024-05-01.",
    "task-manager-service-2024-production-cluster runs at 10:45",
    "sk-learn is not a key, nor is sk-",
    "UUID 123e4567-e89b-12d3-a456-426614174000 in the log",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 fixed it (9fceb02)",
    "sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk",
    "see https://docs.example.com/a/b?x=1#frag and http://user@host.example/path",
    "ssh git@github.com:org/repo.git and https://host:8443/path@v2",
    "mailto:ana@example.com, ana.silva@example.com",
    "def check_password(password: str) -> bool:\n    return hmac.compare_digest(password, x)",
    "token = tokenizer.encode(text)\nfor token in tokens:\n    print(token)",
    "api_key = os.environ['OPENAI_API_KEY']\nsecret = self._secret\npassword = None",
    'token: str | None = None\nmax_tokens: int = 100\n"max_tokens": 512',
    "self.token = token\napi_key = api_key\ntoken = next_token",
    "const token = await getToken();\nlet secret = crypto.randomUUID();",
    'headers = {"Authorization": f"Bearer {token}"}',
    "password_hint: the name of my first dog",
    '{"token_count": 1234, "tokens": 55, "password_hint": "dog"}',
    "PASSWORD=${DB_PASSWORD}\npassword: ********",
    "if secret_key is None: raise ValueError('missing secret')",
    "The JWT spec (RFC 7519) says eyJ is base64 for '{\"'.",
    "a.b.c and eyJhbGciOiJIUzI1NiJ9 alone",
    "AKIA is a prefix; AKIAIOSFODNN is too short",
    "Prices: 3.50 EUR; ratio 16:9; time 12:30:45",
    "The secret is patience. The password is long-winded. The token is 2024-05-01.",
    "Your token is valid until 12:30:45; the password was updated.",
    "ünïcödé 日本語のテキスト 🎉 — all fine",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_issue11_redaction_leaves_ordinary_text_alone(text: str) -> None:
    out, counts = redact_report(text)
    assert out == text
    assert counts == {}


@pytest.mark.parametrize(("text", "secret", "kind"), POSITIVES)
def test_issue11_redaction_is_idempotent(text: str, secret: str, kind: str) -> None:
    once = redact(text)
    twice, counts = redact_report(once)
    assert twice == once and counts == {}


def test_issue11_redact_json_walks_items() -> None:
    item = {
        "role": "user",
        "content": [
            {"type": "input_text", "text": f"my token is {GITHUB}"},
            {"type": "input_text", "text": "nothing secret"},
        ],
        "metadata": {"password": "hunter2", "api_key": 123456, "password_hint": "dog"},
        "tool": {"arguments": json.dumps({"db": "postgres://u:pw9@h/db"})},
        "flags": [True, None, 3.5],
    }
    original = json.loads(json.dumps(item))
    out = redact_json(item)
    assert item == original  # not modified
    assert out["content"][0]["text"] == "my token is [REDACTED:github_token]"
    assert out["content"][1]["text"] == "nothing secret"
    assert out["metadata"] == {
        "password": "[REDACTED:password]",
        "api_key": "[REDACTED:api_key]",
        "password_hint": "dog",
    }
    assert "pw9" not in out["tool"]["arguments"]
    assert out["flags"] == [True, None, 3.5]
    assert out["role"] == "user"
    assert redact_json(out) == out


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("DB_PASSWORD", True),
        ("client_secret", True),
        ("access_token", True),
        ("api-key", True),
        ("x-api-key", True),
        ('"apiKey"', True),
        ("aws_secret_access_key", True),
        ("password_hint", False),
        ("tokens", False),
        ("token_count", False),
        ("max_tokens", False),
        ("secretary", False),
        ("user", False),
    ],
)
def test_issue11_redaction_secret_key_names(name: str, secret: bool) -> None:
    assert is_secret_key(name) is secret
