"""haechi.toml: unknown keys are errors, values are checked, environment overrides apply."""

from __future__ import annotations

from pathlib import Path

import pytest
from haechi.host.config import Address, ConfigError, load_config, load_config_text

BASE = Path("/srv/haechi")


def load(text: str, **environ: str):
    return load_config_text(text, base=BASE, environ=environ)


def test_defaults_are_complete_and_paths_resolve_against_the_config_directory() -> None:
    config = load("")
    assert config.gateway.listen == Address("127.0.0.1", 8080)
    assert config.plugins.dir == BASE / "plugins"
    assert config.audit.path == BASE / "audit" / "audit.jsonl"
    assert config.keys.dir == BASE / "keys"
    assert config.plugins.secrets is None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[gatway]\n", "gatway"),
        ("[gateway]\nmax_body_byte = 10\n", "gateway.max_body_byte"),
        ("[plugins]\nfilter = []\n", "plugins.filter"),
        ("gateway = 3\n", "gateway"),
    ],
)
def test_unknown_keys_and_sections_are_errors_naming_them(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(text)
    assert info.value.key == key


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("[gateway]\nworkers = 0\n", "gateway.workers", "between 1 and 64"),
        ("[gateway]\nworkers = 1.5\n", "gateway.workers", "integer"),
        ("[gateway]\nworkers = true\n", "gateway.workers", "integer"),
        ('[gateway]\nlisten = "8080"\n', "gateway.listen", "HOST:PORT"),
        ('[audit]\nfsync = "sometimes"\n', "audit.fsync", "'always'"),
        ('[plugins]\nfilters = [""]\n', "plugins.filters", "non-empty strings"),
        ("[plugins]\ncrypto = 3\n", "plugins.crypto", "string"),
        ('[gateway]\nallow_remote = "yes"\n', "gateway.allow_remote", "true or false"),
        ("[gateway]\nmax_connections = 0\n", "gateway.max_connections", "between 1 and"),
        ("[gateway]\nmax_head_bytes = 100\n", "gateway.max_head_bytes", "between 4096 and"),
        (
            "[gateway]\nmax_header_bytes = 32768\nmax_head_bytes = 16384\n",
            "gateway.max_head_bytes",
            "below gateway.max_header_bytes",
        ),
    ],
)
def test_bad_values_name_the_key(text: str, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(text)
    assert info.value.key == key
    assert fragment in info.value.message


def test_environment_overrides_are_applied_and_recorded() -> None:
    config = load(
        "[gateway]\nworkers = 1\n",
        HAECHI_GATEWAY__WORKERS="4",
        HAECHI_PLUGINS__FILTERS="pii-filter, secret-filter",
        HAECHI_POLICY__MODE="enforce",
        HAECHI_AUDIT__FSYNC="always",
        OTHER="ignored",
    )
    assert config.gateway.workers == 4
    assert config.plugins.filters == ("pii-filter", "secret-filter")
    assert config.policy == {"mode": "enforce"}
    assert config.audit.fsync == "always"
    assert config.from_environment == (
        "audit.fsync",
        "gateway.workers",
        "plugins.filters",
        "policy.mode",
    )


def test_a_bad_override_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="HAECHI_GATEWAY__WORKERS"):
        load("", HAECHI_GATEWAY__WORKERS="many")
    with pytest.raises(ConfigError, match="HAECHI_GATEWAY__WORKER") as info:
        load("", HAECHI_GATEWAY__WORKER="2")
    assert info.value.key == "gateway.worker"


def test_a_misspelled_variable_is_an_error_not_ignored() -> None:
    with pytest.raises(ConfigError) as info:
        load("", HAECHI_WORKERS="2")
    assert info.value.key == "HAECHI_WORKERS"


def test_remote_bind_needs_tls_or_an_explicit_flag() -> None:
    with pytest.raises(ConfigError, match="not a loopback address") as info:
        load('[gateway]\nlisten = "0.0.0.0:8443"\n')
    assert info.value.key == "gateway.listen"
    assert load('[gateway]\nlisten = "0.0.0.0:8443"\nallow_remote = true\n').gateway.allow_remote
    tls = load('[gateway]\nlisten = "0.0.0.0:8443"\ntls_cert = "c.pem"\ntls_key = "k.pem"\n')
    assert tls.gateway.tls_cert == BASE / "c.pem"
    with pytest.raises(ConfigError, match="both"):
        load('[gateway]\ntls_cert = "c.pem"\n')


def test_admin_listener_is_loopback_only() -> None:
    with pytest.raises(ConfigError) as info:
        load('[admin]\nlisten = "0.0.0.0:9090"\n', HAECHI_GATEWAY__ALLOW_REMOTE="true")
    assert info.value.key == "admin.listen"


def test_load_config_reads_a_file_and_refuses_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "haechi.toml"
    path.write_text("[gateway]\nworkers = 2\n")
    config = load_config(path, environ={})
    assert (config.gateway.workers, config.source) == (2, path)
    assert config.vault.path == tmp_path / "vault.db"
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml", environ={})
    (tmp_path / "bad.toml").write_text("[gateway\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml", environ={})
