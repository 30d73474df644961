"""plugin.toml schema: every error names its field; nothing is silently ignored."""

from __future__ import annotations

import pytest
from haechi.trust import Manifest, ManifestError

from .conftest import manifest_text

BASE = manifest_text()


def parse(text: str) -> Manifest:
    return Manifest.from_toml(text.encode())


def test_defaults_are_explicit() -> None:
    m = parse(manifest_text().split("[limits]")[0])
    assert (m.limits.timeout_ms, m.limits.memory_mb, m.limits.concurrency) == (1000, 256, 4)
    assert m.to_dict()["limits"] == {"timeout-ms": 1000, "memory-mb": 256, "concurrency": 4}


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        ('version = "1.2.0"', 'version = "1.2"', "version", "semantic version"),
        ('version = "1.2.0"', 'version = "v1.2.0"', "version", "semantic version"),
        ('version = "1.2.0"', "version = 1", "version", "must be a string"),
        ('kind = "filter"', 'kind = "authProvider"', "kind", "auth, filter, crypto"),
        ('entry = "plugin.py"', 'entry = "/abs/plugin.py"', "entry", "relative path"),
        ('entry = "plugin.py"', 'entry = "plugin.sh"', "entry", ".py"),
        ('entry = "plugin.py"', 'entry = "missing.py"', "entry", "not a file"),
        ('requires-host = ">=0.1"', 'requires-host = ">=banana"', "requires-host", "PEP 440"),
        ('requires-host = ">=0.1"', 'requires-host = ""', "requires-host", ""),
        ('description = "A test plugin"', 'description = ""', "description", "1-500"),
        ("capabilities = [", "capabilites = [", "capabilites", "did you mean 'capabilities'"),
        ('["request:body-text"]', '["request:credentials"]', "capabilities", "only for auth"),
        ('["request:body-text"]', '["net:fetch:*"]', "capabilities", "DNS name"),
        ('["request:body-text"]', '["net:fetch:Example.COM"]', "capabilities", "DNS name"),
        ('["request:body-text"]', '["secrets:read:../x"]', "capabilities", "name must be"),
        ('["request:body-text"]', '["net:fetch:a.example:99999"]', "capabilities", "port"),
        ('["request:body-text"]', '["net:fetch:a.example:0"]', "capabilities", "port"),
        ('["request:body-text"]', '["state:kvv"]', "capabilities", "unknown capability"),
        ('["request:body-text"]', '["state:kv", "state:kv"]', "capabilities", "listed twice"),
        ('["request:body-text"]', '"state:kv"', "capabilities", "must be a list"),
        ("timeout-ms = 500", "timeout-ms = 0", "limits.timeout-ms", "between 1 and 60000"),
        ("timeout-ms = 500", "timeout-ms = true", "limits.timeout-ms", "integer"),
        ("timeout-ms = 500", "timeout-ms = 1.5", "limits.timeout-ms", "integer"),
        ("memory-mb = 64", "memory-mb = 8", "limits.memory-mb", "between 16 and 4096"),
        ("concurrency = 2", "concurrency = 1000", "limits.concurrency", "between 1 and 64"),
        ("concurrency = 2", "threads = 2", "limits.threads", "unknown key"),
        ("[limits]", 'homepage = "x"\n[limits]', "homepage", "unknown key"),
    ],
)
def test_field_errors(old: str, new: str, field: str, words: str) -> None:
    from haechi.trust import Bundle

    assert old in BASE
    files = {"plugin.toml": BASE.replace(old, new, 1).encode(), "plugin.py": b""}
    with pytest.raises(ManifestError) as info:
        Bundle.from_files(files)
    assert info.value.field == field
    assert words in str(info.value)


def test_missing_required_field() -> None:
    with pytest.raises(ManifestError, match="entry: is required"):
        parse(BASE.replace('entry = "plugin.py"\n', ""))


@pytest.mark.parametrize(
    "capability",
    [
        "net:fetch:jwks.example.com",
        "net:fetch:example.com:8443",
        "secrets:read:bearer-tokens",
        "keys:tenant_a.main",
        "state:kv",
    ],
)
def test_capability_forms_accepted(capability: str) -> None:
    text = BASE.replace('["request:body-text"]', f'["{capability}"]')
    assert parse(text).capabilities == (capability,)


def test_invalid_toml_and_utf8() -> None:
    with pytest.raises(ManifestError, match="not valid TOML"):
        parse("id = ")
    with pytest.raises(ManifestError, match="UTF-8"):
        Manifest.from_toml(b'id = "\xff"')
