"""bearer-auth in the real sandbox, through the SDK harness.

Run: ``.venv/bin/pytest --import-mode=importlib plugins/bearer-auth/test_plugin.py``. Tokens are
made at run time; the secret holds only their digests, as in production.
"""

import hashlib
import secrets

from haechi.sdk import Decision
from haechi.sdk.testing import plugin_fixture

ALICE = secrets.token_urlsafe(32)
BATCH = secrets.token_urlsafe(32)


def _entry(token: str, rest: str) -> str:
    return f"sha256:{hashlib.sha256(token.encode()).hexdigest()} {rest}"


plugin = plugin_fixture(
    secrets={
        "bearer-tokens": "\n".join(
            [
                "# issued for the tests",
                _entry(ALICE, "alice chat,embeddings"),
                _entry(BATCH, "batch"),
            ]
        )
    }
)


def test_issued_tokens_are_admitted(plugin):
    assert plugin.authenticate(f"Bearer {ALICE}") == Decision.allow_as(
        "alice", scopes=["chat", "embeddings"]
    )
    assert plugin.authenticate(f"bearer {BATCH}") == Decision.allow_as("batch")


def test_other_tokens_are_refused(plugin):
    assert plugin.authenticate(f"Bearer {secrets.token_urlsafe(32)}") == Decision.deny(
        "unknown-token"
    )
    assert plugin.authenticate(f"Bearer {ALICE[:-2]}") == Decision.deny("unknown-token")


def test_deny_reasons(plugin):
    assert plugin.authenticate(None) == Decision.deny("missing-credentials")
    assert plugin.authenticate(f"Basic {ALICE}") == Decision.deny("not-bearer")
    assert plugin.authenticate("Bearer not a token") == Decision.deny("malformed-token")
    assert plugin.authenticate("Bearer " + "a" * 4097) == Decision.deny("oversized-token")
