"""How git gets a token without it reaching argv, the remote URL, logs or artifacts.

An https token becomes an `http.<origin>/.extraheader` entry passed through git's environment
(`GIT_CONFIG_COUNT` / `GIT_CONFIG_KEY_<n>` / `GIT_CONFIG_VALUE_<n>`, git ≥ 2.31), scoped to the
remote's scheme and host, the way CI checkouts do it. Nothing is written to disk or to `.git/config`.
Git never prompts (`GIT_TERMINAL_PROMPT=0`, ssh in batch mode): a missing credential is an error, not
a hung worker.
"""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

from pydantic import SecretStr

TOKEN_USER = "x-access-token"  # noqa: S105 - the user name GitHub expects with a token


def auth_header(token: SecretStr) -> str:
    """`Authorization: basic <base64(x-access-token:token)>`: what GitHub and most forges accept."""
    pair = f"{TOKEN_USER}:{token.get_secret_value()}".encode()
    return "Authorization: basic " + base64.b64encode(pair).decode()


def git_env(url: str, token: SecretStr | None) -> dict[str, str]:
    """Environment variables for every git command on `url`."""
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_SSH_COMMAND": "ssh -o BatchMode=yes"}
    parts = urlsplit(url)
    if token is not None and parts.scheme in ("http", "https") and parts.hostname:
        origin = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "") + "/"
        env |= {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": f"http.{origin}.extraheader",
            "GIT_CONFIG_VALUE_0": auth_header(token),
        }
    return env


def redact_token(text: str, token: SecretStr | None) -> str:
    """Remove the token and its header form from a message (git errors, hook output)."""
    if token is None or not token.get_secret_value():
        return text
    for secret in (token.get_secret_value(), auth_header(token).split(" ", 2)[-1]):
        text = text.replace(secret, "[REDACTED:token]")
    return text
