"""find_secrets / redact: every kind caught, values never echoed, ordinary code left alone."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from nightshift.context.secrets import SecretHit, SecretKind, find_secrets, is_placeholder, redact

PEM_BODY = "MIIEowIBAAKCAQEAv9Xo3KpL7Qz2Wm8Rt4Ny6Bh1Jc5Fd0Ge7Ha9Ib2Kc4Ld6Me8Nf\nQ2w3E4r5T6y7U8i9O0p1A2s3D4f5G6h7J8k9"

# (kind, file path, text, the secret value that must disappear)
CASES = [
    ("aws-access-key-id", "cfg.py", 'KEY_ID = "AKIAIOSFODNN7EXAMPLE"\n', "AKIAIOSFODNN7EXAMPLE"),
    (
        "aws-secret-access-key",
        "credentials",
        "[default]\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    (
        "github-token",
        "ci.sh",
        "curl -H 'Authorization: token ghp_R2d2C3p0L8k9J7h6G5f4D3s2A1q0W9e8R7t6'\n",
        "ghp_R2d2C3p0L8k9J7h6G5f4D3s2A1q0W9e8R7t6",
    ),
    (
        "github-token",
        "a.py",
        'GH = "gho_16C7e42F292c6912E7710c838347Ae178B4a"\n',
        "gho_16C7e42F292c6912E7710c838347Ae178B4a",
    ),
    (
        "github-token",
        "a.py",
        'GH = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGH"\n',
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGH",
    ),
    (
        "anthropic-key",
        "a.py",
        'client = Anthropic(api_key="sk-ant-api03-Qw3rTy7UiOp0AsDfGhJkL1zXcVbNm2-QwErTy9")\n',
        "sk-ant-api03-Qw3rTy7UiOp0AsDfGhJkL1zXcVbNm2-QwErTy9",
    ),
    (
        "openai-key",
        "a.js",
        "const key = 'sk-proj-Zx9Cv8Bn7Mq6Wr5Et4Yu3Io2Pa1Sd0Fg';\n",
        "sk-proj-Zx9Cv8Bn7Mq6Wr5Et4Yu3Io2Pa1Sd0Fg",
    ),
    (
        "openai-key",
        "a.py",
        "OPENAI = 'sk-AbCdEfGh1234567890IjKlMnOpQrStUvWxYz123456789012'\n",
        "sk-AbCdEfGh1234567890IjKlMnOpQrStUvWxYz123456789012",
    ),
    (
        "slack-token",
        "a.py",
        'SLACK = "xoxb-2837461029-1928374650-QpWoEiRuTyAlSkDjFhGz"\n',
        "xoxb-2837461029-1928374650-QpWoEiRuTyAlSkDjFhGz",
    ),
    (
        "slack-webhook",
        "a.py",
        'HOOK = "https://hooks.slack.com/services/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"\n',
        "T0A1B2C3D/B4E5F6G7H/q8W9e0R1t2Y3u4I5o6P7a8S9",
    ),
    (
        "google-api-key",
        "index.html",
        '<script src="https://maps.googleapis.com/maps/api/js?key=AIzaSyD4x9Kq2Lm8Np3Rt7Vw1Yz5Bc6Df0Gh2Jk">',
        "AIzaSyD4x9Kq2Lm8Np3Rt7Vw1Yz5Bc6Df0Gh2Jk",
    ),
    (
        "jwt",
        "a.txt",
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.Xk2v9Qd8Lr4Tn6Wb1Mc3Zp7Ys5Ha0Ge\n",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.Xk2v9Qd8Lr4Tn6Wb1Mc3Zp7Ys5Ha0Ge",
    ),
    ("url-credentials", "a.py", 'DB = "postgresql://app:Zq9xT4kLm2W@db.internal:5432/app"\n', "Zq9xT4kLm2W"),
    ("url-credentials", "a.cfg", "remote = https://deploy:g1t-Pa55-w0rd@git.example.org/repo.git\n", "g1t-Pa55-w0rd"),
    ("generic-secret", "a.py", 'db_password = "N7#kV2!pQ9$wL4"\n', "N7#kV2!pQ9$wL4"),
    ("generic-secret", "a.py", 'self.client_secret: str = "f3a9c1d7e5b2a8c4"\n', "f3a9c1d7e5b2a8c4"),
    ("generic-secret", "a.json", '{"apiKey": "Qm9vbGVhbjEyMzQ1Ng8x"}\n', "Qm9vbGVhbjEyMzQ1Ng8x"),
    ("generic-secret", "a.js", "const config = { authToken: `r4nd0m-T0k3n-V4lu3` };\n", "r4nd0m-T0k3n-V4lu3"),
    ("generic-secret", "values.yaml", "db:\n  password: Zq9xT4kLm2aa\n", "Zq9xT4kLm2aa"),
    (
        "generic-secret",
        "Dockerfile",
        "ENV API_KEY=8f14e45fceea167a5a36dedd4bea2543\n",
        "8f14e45fceea167a5a36dedd4bea2543",
    ),
    ("env-value", ".env", "DATABASE_HOST=db.internal\n", "db.internal"),
    ("env-value", "config/.env.production", "export FEATURE_FLAG='on-for-beta'\n", "on-for-beta"),
    (
        "private-key",
        "id_rsa",
        f"-----BEGIN OPENSSH PRIVATE KEY-----\n{PEM_BODY}\n-----END OPENSSH PRIVATE KEY-----\n",
        PEM_BODY,
    ),
]


@pytest.mark.parametrize(("kind", "path", "text", "value"), CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_each_kind_is_found_and_redacted(kind: str, path: str, text: str, value: str) -> None:
    redacted, hits = redact(text, path)

    assert [h.kind for h in hits] == [kind]
    assert value not in redacted
    assert f"[REDACTED:{kind}]" in redacted
    hit = hits[0]
    assert hit.path == path
    assert value not in hit.preview
    assert f"[REDACTED:{kind}]" in hit.preview
    assert find_secrets(text, path) == hits


def test_kind_names_are_stable() -> None:
    assert {k.value for k in SecretKind} == {
        "private-key", "aws-access-key-id", "aws-secret-access-key", "github-token", "anthropic-key",
        "openai-key", "slack-token", "slack-webhook", "google-api-key", "jwt", "url-credentials",
        "env-value", "generic-secret",
    }  # fmt: skip
    assert str(SecretKind.github_token) == "github-token"


def test_hits_carry_lines_and_redacted_previews() -> None:
    text = 'import os\n\nTOKEN = "ghp_R2d2C3p0L8k9J7h6G5f4D3s2A1q0W9e8R7t6"  # CI\nx = 1\n'
    (hit,) = find_secrets(text, "src/settings.py")
    assert hit == SecretHit(
        path="src/settings.py", line=3, kind="github-token", preview='TOKEN = "[REDACTED:github-token]"  # CI'
    )
    assert set(SecretHit.model_json_schema()["properties"]) == {"path", "line", "kind", "preview"}


def test_preview_of_a_long_line_is_trimmed_around_the_secret() -> None:
    text = "x = [" + "1, " * 200 + '"AKIAIOSFODNN7EXAMPLE"' + ", 2" * 200 + "]\n"
    (hit,) = find_secrets(text, "a.py")
    assert len(hit.preview) <= 170
    assert "[REDACTED:aws-access-key-id]" in hit.preview


def test_pem_block_is_redacted_whole_including_escaped_newlines() -> None:
    escaped = PEM_BODY.replace("\n", "\\n")
    inline = f'KEY = "-----BEGIN PRIVATE KEY-----\\n{escaped}\\n-----END PRIVATE KEY-----\\n"\n'
    redacted, hits = redact(inline, "a.py")
    assert redacted == 'KEY = "[REDACTED:private-key]\\n"\n'
    assert [h.kind for h in hits] == ["private-key"]


def test_pem_block_cut_short_is_still_redacted() -> None:
    text = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n"
    redacted, _ = redact(text, "key.pem")
    assert PEM_BODY.splitlines()[0] not in redacted
    assert PEM_BODY.splitlines()[1] not in redacted


def test_a_mere_mention_of_a_pem_header_is_not_a_secret() -> None:
    text = (
        'BEGIN = "-----BEGIN RSA PRIVATE KEY-----"\nEND = "-----END RSA PRIVATE KEY-----"\n'
        "if line.startswith(BEGIN):\n    pass\n"
    )
    assert find_secrets(text, "parse.py") == []


def test_env_file_values_are_all_redacted_keys_kept() -> None:
    text = (
        "# app settings\n"
        "export OPENAI_API_KEY=sk-proj-Zx9Cv8Bn7Mq6Wr5Et4Yu3Io2Pa1Sd0Fg\n"
        "DEBUG=true\n"
        'GREETING="hello world"  \n'
        "PORT=8080 # web\n"
        "EMPTY=\n"
        'MULTI="line one\nline two"\n'
    )
    redacted, hits = redact(text, ".env")
    assert redacted == (
        "# app settings\n"
        "export OPENAI_API_KEY=[REDACTED:openai-key]\n"
        "DEBUG=[REDACTED:env-value]\n"
        'GREETING="[REDACTED:env-value]"  \n'
        "PORT=[REDACTED:env-value] # web\n"
        "EMPTY=\n"
        'MULTI="[REDACTED:env-value]"\n'
    )
    assert [(h.line, h.kind) for h in hits] == [
        (2, "openai-key"), (3, "env-value"), (4, "env-value"), (5, "env-value"), (7, "env-value"),
    ]  # fmt: skip


@pytest.mark.parametrize("name", [".env", ".env.local", ".env.production", "prod.env", ".envrc"])
def test_env_file_names(name: str) -> None:
    assert [h.kind for h in find_secrets("NAME=value\n", name)] == ["env-value"]


def test_env_example_keeps_placeholders_but_not_real_values() -> None:
    text = (
        "API_KEY=changeme\nSECRET=<your secret here>\nTOKEN=${TOKEN}\nDEBUG=true\nPORT=8080\nHOST=localhost\n"
        "EMPTY=\nREAL_SECRET=Zx81kQp0LmN3vB\nGH=ghp_R2d2C3p0L8k9J7h6G5f4D3s2A1q0W9e8R7t6\n"
        "CALLBACK_HOST=api.prod.internal\n"
    )
    redacted, hits = redact(text, ".env.example")
    assert [(h.line, h.kind) for h in hits] == [(8, "generic-secret"), (9, "github-token"), (10, "env-value")]
    assert "API_KEY=changeme" in redacted
    assert "Zx81kQp0LmN3vB" not in redacted


def test_redaction_is_idempotent() -> None:
    text = "".join(c[2] for c in CASES if c[1] not in (".env", "config/.env.production"))
    once, hits = redact(text, "mixed.py")
    assert hits
    assert redact(once, "mixed.py") == (once, [])
    env_once, _ = redact("A=1\nB=two\n", ".env")
    assert redact(env_once, ".env") == (env_once, [])


def test_overlapping_detections_become_one_redaction() -> None:
    text = 'api_key = "sk-proj-Zx9Cv8Bn7Mq6Wr5Et4Yu3Io2Pa1Sd0Fg"\n'  # generic AND openai
    redacted, hits = redact(text, "a.py")
    assert redacted == 'api_key = "[REDACTED:openai-key]"\n'
    assert len(hits) == 1


@pytest.mark.parametrize(
    "value",
    ["", "changeme", "<token>", "${API_KEY}", "{{ secret }}", "xxxxxxxx", "your-api-key", "%(password)s", "****"],
)
def test_placeholders(value: str) -> None:
    assert is_placeholder(value)


@pytest.mark.parametrize("value", ["Zq9xT4kLm2W", "N7#kV2!pQ9$wL4", "8f14e45fceea167a5a36dedd4bea2543"])
def test_not_placeholders(value: str) -> None:
    assert not is_placeholder(value)


ORDINARY_CODE = """
import getpass, os
password = getpass.getpass("Password: ")
token_type = "bearer"
TOKEN_URL = "https://oauth2.googleapis.com/token"
SECRET_KEY_ENV = "DJANGO_SECRET_KEY"
password_field = "password_confirmation"
tokenizer = "bert-base-uncased"
prompt = "Enter your password"
api_key = os.environ["API_KEY"]
api_key = os.environ.get("API_KEY", "")
DATABASE_URL = "postgres://user:password@localhost/db"
dsn = f"postgres://{user}:{pw}@{host}/{name}"
amqp = "amqp://guest:guest@localhost:5672//"
engine = create_engine("oracle://scott:tiger@localhost")
sklearn_kernel = "sk-learn-kernel-approximation"
hash_alg = "pbkdf2_sha256"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
content_type = "application/vnd.api+json"
key = "name"
token = "abc"
secret_path = "/run/secrets/db_password"
KEY_PATTERN = "[A-Z]{3}-[0-9]{4}"
max_tokens = 4096
if token == "EOF":
    pass
TOKEN_TYPES = {"NUMBER": 1, "STRING": 2}
public_key_token = "b77a5c561934e089"
Token.Number = "#ff0000"
headers = {"Authorization": f"Bearer {token}"}
private_key: Optional[PrivateKey] = None
ssh_key_path = "~/.ssh/id_ed25519"
cache_key = f"user:{user_id}"
sort_key = "created_at"
CSRF_TOKEN_NAME = "csrftoken"
def check(password: str = "") -> bool: ...
example = "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
"""


def test_no_false_positives_on_ordinary_code() -> None:
    assert find_secrets(ORDINARY_CODE, "app/settings.py") == []
    assert find_secrets(ORDINARY_CODE, "config.yaml") == []


def test_no_false_positives_on_the_standard_librarys_network_modules() -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    modules = [
        "smtplib.py", "imaplib.py", "ftplib.py", "poplib.py", "getpass.py", "hmac.py", "ssl.py", "netrc.py",
        "secrets.py", "http/cookiejar.py", "http/client.py", "urllib/parse.py", "xmlrpc/client.py",
        "email/utils.py", "logging/handlers.py", "hashlib.py", "base64.py", "tokenize.py",
    ]  # fmt: skip
    hits = {m: find_secrets((stdlib / m).read_text("utf-8"), m) for m in modules if (stdlib / m).exists()}
    assert len(hits) >= 15
    assert {m: h for m, h in hits.items() if h} == {}
