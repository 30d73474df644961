"""secret-filter in the real sandbox: a few cases per type, offsets in the original text."""

import pytest
from haechi.sdk.testing import plugin_fixture

plugin = plugin_fixture()

GITHUB = "ghp_EXAMPLE0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PUBLIC_KEY = (
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----"
)
PEM = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIEXAMPLE\nAwEHoUQDQgAE\n-----END EC PRIVATE KEY-----"


def found(plugin, text):
    return [(d.type, d.label, text[d.start : d.end]) for d in plugin.inspect([text])]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id AKIAIOSFODNN7EXAMPLE", ("api_key", "aws-access-key-id", "AKIAIOSFODNN7EXAMPLE")),
        (f"GITHUB_TOKEN={GITHUB}", ("api_key", "github", GITHUB)),
        (
            "sk_live_EXAMPLE4eC39HqLyjWDarjtT1",
            ("api_key", "stripe", "sk_live_EXAMPLE4eC39HqLyjWDarjtT1"),
        ),
        (f"Authorization: Bearer {JWT}", ("jwt", None, JWT)),
        (f"key:\n{PEM}\n", ("private_key", "ec", PEM)),
        ("export DB_PASSWORD=q8Zr!v2Lm#pX4t", ("secret", "env-assignment", "q8Zr!v2Lm#pX4t")),
        ('{"password": "Xk9#mQ2$vL7p"}', ("secret", "json-field", "Xk9#mQ2$vL7p")),
        ("db:\n  password: Tr0ub4dor&3\n", ("secret", "yaml-field", "Tr0ub4dor&3")),
    ],
)
def test_finds_each_type(plugin, text, expected):
    assert found(plugin, text) == [expected]


@pytest.mark.parametrize(
    "text",
    [
        "API_KEY=your-api-key-here",
        "password: changeme",
        "TOKEN=xxxxxxxxxxxxxxxxxxxxxxxx",
        "SECRET=${SECRET}",
        "token: <your-token>",
        "password: ********",
        "password = os.environ['DB_PASSWORD']",
        PUBLIC_KEY,
    ],
)
def test_leaves_placeholders_and_code(plugin, text):
    assert found(plugin, text) == []


def test_zero_width_inside_a_token_maps_back(plugin):
    hidden = "sk_live_EXAMPLE4eC\u200b39HqLyjWDarjtT1"
    assert found(plugin, f"key {hidden} end") == [("api_key", "stripe", hidden)]


def test_confidence_is_reported(plugin):
    [pem] = plugin.inspect([PEM])
    assert pem.confidence == 99
