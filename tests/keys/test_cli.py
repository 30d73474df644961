"""``haechi keys init | rotate | show`` through its own parser (the lead wires it into main)."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest
from haechi.host.cli import keys as keys_cli
from haechi.host.cli._args import EXIT_USAGE, Parser, UsageError
from haechi.host.keys import KeyStore, PersistentKeyRing


def haechi(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    """Parse and run like ``haechi.host.cli.main`` does: UsageError and argparse errors -> 2."""
    parser = Parser(prog="haechi")
    groups = parser.add_subparsers(dest="group", parser_class=Parser)
    keys_cli.register(groups)
    try:
        args = parser.parse_args([str(a) for a in argv])
        code = args.handler(args)
    except UsageError as exc:
        code = EXIT_USAGE
        print(f"haechi: error: {exc}", file=sys.stderr)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_init_rotate_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "keys"
    code, out, _ = haechi(capsys, "keys", "init", directory)
    assert code == 0 and "created key 'vault' version 1" in out
    assert haechi(capsys, "keys", "init", directory, "--name", "tenant-b")[0] == 0
    code, out, _ = haechi(capsys, "keys", "rotate", directory, "vault")
    assert code == 0 and "version 2 is now current" in out
    with PersistentKeyRing(directory, window=8) as ring:
        for _ in range(3):
            ring.seal("vault", b"m", b"")
    code, out, _ = haechi(capsys, "keys", "show", directory, "--format", "json")
    assert code == 0
    shown = {k["name"]: k for k in json.loads(out)["keys"]}
    assert set(shown) == {"vault", "tenant-b"}
    assert shown["vault"]["current"] == 2
    v2 = shown["vault"]["versions"][1]
    assert (v2["reserved"], v2["used"], v2["budget"]) == (8, 3, 2**32)
    assert (v2["current"], v2["warning"], v2["exhausted"]) == (True, False, False)
    code, out, _ = haechi(capsys, "keys", "show", directory)
    assert code == 0 and "vault: current version 2" in out and "reserved 8 of" in out


def test_show_never_prints_key_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = KeyStore.init(tmp_path / "keys", "vault")
    store.rotate("vault")
    printed = "".join(
        haechi(capsys, "keys", "show", store.directory, *fmt)[1]
        for fmt in ((), ("--format", "json"))
    )
    for material in store.load("vault").materials.values():
        assert base64.urlsafe_b64encode(material).rstrip(b"=").decode() not in printed
        assert material.hex() not in printed


def test_show_warns_and_refuses_by_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = KeyStore.init(tmp_path / "keys", "vault", budget=4)
    with PersistentKeyRing(store, window=2) as ring:
        ring.seal("vault", b"m", b"")
        assert "WARNING" in haechi(capsys, "keys", "show", store.directory)[1]
        ring.seal("vault", b"m", b"")
        ring.seal("vault", b"m", b"")
    code, out, _ = haechi(capsys, "keys", "show", store.directory)
    assert code == 0 and "EXHAUSTED" in out and "haechi keys rotate vault" in out


def test_failures_exit_1_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "keys"
    haechi(capsys, "keys", "init", directory)
    key_file = directory / "vault.key.json"
    code, _, err = haechi(capsys, "keys", "init", directory)
    assert code == 1 and str(key_file) in err and "key-exists" in err
    code, _, err = haechi(capsys, "keys", "rotate", directory, "missing")
    assert code == 1 and "missing.key.json" in err
    code, _, err = haechi(capsys, "keys", "rotate", tmp_path / "nowhere", "vault")
    assert code == 1 and "nowhere" in err
    (directory / "vault.budget.json").write_text("{}")
    code, out, _ = haechi(capsys, "keys", "show", directory, "--format", "json")
    assert code == 1 and "'format'" in json.loads(out)["keys"][0]["problem"]
    key_file.write_text("{")
    code, _, err = haechi(capsys, "keys", "show", directory)
    assert code == 1 and str(key_file) in err


@pytest.mark.parametrize(
    "argv",
    [
        ("keys", "rotate", "DIR", "Bad Name"),
        ("keys", "init", "DIR", "--name", "../etc"),
        ("keys", "init", "DIR", "--name", "a", "--name", "b"),
        ("keys", "show", "DIR", "--format", "yaml"),
        ("keys", "rotate", "DIR"),
        ("keys",),
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    directory = str(tmp_path / "keys")
    code, _, err = haechi(capsys, *(directory if a == "DIR" else a for a in argv))
    assert code == 2, err
    assert not (tmp_path / "keys").exists()
