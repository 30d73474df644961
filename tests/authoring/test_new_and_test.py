"""plugin new makes bundles that pass plugin test; plugin test catches what it must."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..conftest import run_cli


def plugin_test(directory: Path, *extra: str) -> tuple[int, dict]:
    result = run_cli("plugin", "test", directory, "--format", "json", *extra)
    assert result.stdout, result.stderr
    return result.code, json.loads(result.stdout)


def statuses(report: dict) -> dict[str, str]:
    return {row["name"]: row["status"] for row in report["rows"]}


@pytest.mark.parametrize("kind", ["filter", "auth", "crypto"])
def test_a_new_bundle_passes_plugin_test_as_generated(tmp_path: Path, kind: str) -> None:
    made = run_cli("plugin", "new", f"acme-{kind}", "--kind", kind, "--dir", tmp_path)
    assert made.code == 0, made.stderr
    bundle = tmp_path / f"acme-{kind}"
    assert sorted(p.name for p in bundle.iterdir()) == [
        "README.md",
        "plugin.py",
        "plugin.toml",
        "test_plugin.py",
    ]
    code, report = plugin_test(bundle)
    assert code == 0, report
    sections = {row["section"] for row in report["rows"]}
    assert sections == {"load", "conformance", "tests"}
    assert all(row["status"] == "pass" for row in report["rows"]), report
    assert sorted(p.name for p in bundle.iterdir()) == [  # nothing written into the bundle
        "README.md",
        "plugin.py",
        "plugin.toml",
        "test_plugin.py",
    ]


def test_new_never_touches_an_existing_directory(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    result = run_cli("plugin", "new", "taken", "--kind", "filter", "--dir", tmp_path)
    assert result.code == 1
    assert "already exists" in result.stderr
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]


def test_new_refuses_a_name_that_is_not_a_plugin_id(tmp_path: Path) -> None:
    result = run_cli("plugin", "new", "Bad Name", "--kind", "auth", "--dir", tmp_path)
    assert result.code == 1
    assert "cannot be a plugin id" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no half-made directory left behind


def make(tmp_path: Path, kind: str, code: str, tests: str | None = None) -> Path:
    run_cli("plugin", "new", "subject", "--kind", kind, "--dir", tmp_path)
    bundle = tmp_path / "subject"
    (bundle / "plugin.py").write_text(code)
    if tests is None:
        (bundle / "test_plugin.py").unlink()
    else:
        (bundle / "test_plugin.py").write_text(tests)
    return bundle


def test_an_auth_plugin_that_accepts_anything_fails(tmp_path: Path) -> None:
    bundle = make(
        tmp_path,
        "auth",
        "from haechi.sdk import Decision\n"
        "def authenticate(request):\n"
        "    return Decision.allow_as('anyone')\n",
    )
    code, report = plugin_test(bundle)
    assert code == 1
    rows = statuses(report)
    assert rows["auth: no credentials are denied"] == "fail"
    assert rows["auth: a random token is denied"] == "fail"
    assert rows["auth: a credential made at run time is accepted"] == "pass"


def test_a_backdoor_for_fixed_test_credentials_does_not_pass(tmp_path: Path) -> None:
    """The original's conformance accepted any 'valid.*' token; ours makes its own."""
    bundle = make(
        tmp_path,
        "auth",
        "from haechi.sdk import Decision\n"
        "def authenticate(request):\n"
        "    token = request.bearer() or ''\n"
        "    if token.startswith('valid.'):\n"
        "        return Decision.allow_as('tester')\n"
        "    return Decision.deny('unknown-token')\n",
    )
    code, report = plugin_test(bundle)
    assert code == 1
    assert statuses(report)["auth: a credential made at run time is accepted"] == "fail"


def test_a_filter_with_spans_outside_its_text_fails(tmp_path: Path) -> None:
    bundle = make(
        tmp_path,
        "filter",
        "from haechi.sdk import Detection\n"
        "def inspect(segments):\n"
        "    return [Detection('x', i, 0, len(s) + 1) for i, s in enumerate(segments)]\n",
    )
    code, report = plugin_test(bundle)
    assert code == 1
    detail = next(r["detail"] for r in report["rows"] if r["status"] == "fail")
    assert "outside the text" in detail


def test_a_crypto_plugin_that_does_not_bind_the_tenant_fails(tmp_path: Path) -> None:
    bundle = make(
        tmp_path,
        "crypto",
        "def encrypt(plaintext, fields, ctx):\n"
        "    return ctx.seal('data', plaintext, str(fields.get('type')).encode())\n"
        "def decrypt(sealed, fields, ctx):\n"
        "    return ctx.open('data', sealed, str(fields.get('type')).encode())\n",
    )
    code, report = plugin_test(bundle)
    assert code == 1
    assert statuses(report)["crypto: another type or tenant fails to open"] == "fail"
    assert statuses(report)["crypto: open(seal(x)) == x, also for empty x"] == "pass"


def test_a_crypto_plugin_with_its_own_key_fails_the_budget_vector(tmp_path: Path) -> None:
    """Without keys:<name> the host cannot count nonces (NIST SP 800-38D §8.3)."""
    bundle = make(
        tmp_path,
        "crypto",
        "def encrypt(plaintext, fields, ctx):\n    return plaintext[::-1]\n"
        "def decrypt(sealed, fields, ctx):\n    return sealed[::-1]\n",
    )
    manifest = bundle / "plugin.toml"
    manifest.write_text(manifest.read_text().replace('["keys:data"]', "[]"))
    code, report = plugin_test(bundle)
    assert code == 1
    assert statuses(report)["crypto: every seal is counted against keys:<name>"] == "fail"


def test_failing_own_tests_fail_the_run(tmp_path: Path) -> None:
    bundle = make(
        tmp_path,
        "filter",
        "def inspect(segments):\n    return []\n",
        tests="def test_expects_something():\n    assert 1 + 1 == 3\n",
    )
    code, report = plugin_test(bundle)
    assert code == 1
    assert statuses(report)["test_plugin::test_expects_something"] == "fail"


def test_a_broken_bundle_is_reported_not_crashed_on(tmp_path: Path) -> None:
    bundle = make(tmp_path, "filter", "def inspect(segments):\n    return []\n")
    (bundle / "plugin.toml").write_text('id = "x"\n')
    code, report = plugin_test(bundle)
    assert code == 1
    assert report["rows"][0]["section"] == "load"
    assert "plugin.toml" in report["rows"][0]["detail"]


def test_a_plugin_that_fails_to_load_is_reported(tmp_path: Path) -> None:
    bundle = make(tmp_path, "filter", "raise RuntimeError('broken at import')\n")
    code, report = plugin_test(bundle)
    assert code == 1
    assert "broken at import" in report["rows"][0]["detail"]


def test_text_output_is_a_table(tmp_path: Path) -> None:
    made = run_cli("plugin", "new", "tabular", "--kind", "filter", "--dir", tmp_path)
    assert made.code == 0
    result = run_cli("plugin", "test", tmp_path / "tabular")
    assert result.code == 0
    assert "PASS  conformance filter: an empty request gives no detections" in result.stdout
    assert result.stdout.rstrip().endswith("all checks passed")


def test_new_refuses_a_name_that_would_inject_toml_or_a_path(tmp_path: Path) -> None:
    inner = tmp_path / "inner"
    result = run_cli("plugin", "new", 'ok" #/../../escaped', "--kind", "filter", "--dir", inner)
    assert result.code == 1
    assert "cannot be a plugin id" in result.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == []


def test_own_tests_do_not_inherit_the_callers_secrets(tmp_path: Path) -> None:
    bundle = make(
        tmp_path,
        "filter",
        "def inspect(segments):\n    return []\n",
        tests=(
            "import os\n"
            "def test_environment():\n"
            "    assert 'HAECHI_REVIEW_SECRET' not in os.environ\n"
        ),
    )
    import os

    os.environ["HAECHI_REVIEW_SECRET"] = "s3cr3t"
    try:
        code, report = plugin_test(bundle)
    finally:
        del os.environ["HAECHI_REVIEW_SECRET"]
    assert code == 0, report
    assert any("outside the sandbox" in note for note in report["notes"])


def test_no_own_tests_runs_nothing_from_the_bundle_outside_the_sandbox(tmp_path: Path) -> None:
    marker = tmp_path / "ran-outside"
    bundle = make(
        tmp_path,
        "filter",
        "def inspect(segments):\n    return []\n",
        tests=f"open({str(marker)!r}, 'w').write('x')\ndef test_x():\n    pass\n",
    )
    code, report = plugin_test(bundle, "--no-own-tests")
    assert code == 0
    assert not marker.exists()
    assert {row["section"] for row in report["rows"]} == {"load", "conformance"}
    assert report["notes"] == []


def test_a_crypto_plugin_with_an_empty_aad_fails(tmp_path: Path) -> None:
    """A Sealed header outside the AAD lets a stored value be relabelled for another tenant."""
    bundle = make(
        tmp_path,
        "crypto",
        "from haechi.sdk import Sealed\n"
        "def encrypt(plaintext, fields, ctx):\n"
        "    header = Sealed('data', fields['type'], b'', fields.get('tenant', ''))\n"
        "    return header.with_body(ctx.seal('data', plaintext))\n"
        "def decrypt(sealed, fields, ctx):\n"
        "    value = Sealed.from_bytes(sealed)\n"
        "    if value.type != fields['type'] or value.tenant != fields.get('tenant', ''):\n"
        "        raise ValueError('wrong type or tenant')\n"
        "    return ctx.open('data', value.body)\n",
    )
    code, report = plugin_test(bundle)
    assert code == 1
    rows = statuses(report)
    assert rows["crypto: type, tenant, expiry and key are inside the AAD"] == "fail"
    assert rows["crypto: another type or tenant fails to open"] == "pass"


def test_a_jwt_plugin_that_ignores_the_signature_fails(tmp_path: Path) -> None:
    bundle = make(
        tmp_path,
        "auth",
        "import base64, json, time\n"
        "from haechi.sdk import Decision\n"
        "def authenticate(request):\n"
        "    token = request.bearer() or ''\n"
        "    try:\n"
        "        body = token.split('.')[1]\n"
        "        claims = json.loads(base64.urlsafe_b64decode(body + '=' * (-len(body) % 4)))\n"
        "    except Exception:\n"
        "        return Decision.deny('malformed-token')\n"
        "    if claims.get('aud') != 'haechi' or claims.get('exp', 0) < time.time():\n"
        "        return Decision.deny('wrong-claims')\n"
        "    return Decision.allow_as(claims['sub'])\n",
    )
    manifest = bundle / "plugin.toml"
    manifest.write_text(
        manifest.read_text().replace(
            '"secrets:read:bearer-tokens"',
            '"secrets:read:jwt-config", "secrets:read:jwt-hs256-key"',
        )
    )
    code, report = plugin_test(bundle)
    assert code == 1
    rows = statuses(report)
    assert rows["auth: a credential made at run time is accepted"] == "pass"
    assert rows["auth: near misses of that credential are denied"] == "fail"


def test_a_bearer_plugin_that_forgives_a_suffix_fails(tmp_path: Path) -> None:
    bundle = make(
        tmp_path,
        "auth",
        "import hashlib\n"
        "from haechi.sdk import Decision, hookimpl\n"
        "TOKENS = []\n"
        "@hookimpl\n"
        "def setup(ctx):\n"
        "    for line in ctx.secret('bearer-tokens').splitlines():\n"
        "        TOKENS.append(line.split()[0][7:])\n"
        "def authenticate(request):\n"
        "    token = request.bearer() or ''\n"
        "    for candidate in (token, token[:-1]):  # forgives one trailing character\n"
        "        if hashlib.sha256(candidate.encode()).hexdigest() in TOKENS:\n"
        "            return Decision.allow_as('x')\n"
        "    return Decision.deny('unknown-token')\n",
    )
    code, report = plugin_test(bundle, "--no-own-tests")
    rows = statuses(report)
    assert code == 1
    assert rows["auth: a credential made at run time is accepted"] == "pass"
    assert rows["auth: near misses of that credential are denied"] == "fail"
