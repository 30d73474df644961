"""Output formats: the JSON contract and SARIF 2.1.0."""

from __future__ import annotations

import json
from pathlib import Path

from haechi.host import __version__

from .conftest import ALLOW


def test_sarif_for_a_refusal(cli, signed: Path, author) -> None:
    (signed / "plugin.py").write_text("changed\n")
    result = cli("plugin", "verify", signed, "--trust", author.public, *ALLOW, "--format", "sarif")
    assert result.code == 11
    sarif = json.loads(result.stdout)
    assert sarif["version"] == "2.1.0"
    assert sarif["$schema"].endswith("sarif-2.1.0.json")
    driver = sarif["runs"][0]["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("haechi", __version__)
    [result_] = sarif["runs"][0]["results"]
    assert result_["ruleId"] == "tampered" and result_["level"] == "error"
    assert driver["rules"][result_["ruleIndex"]]["id"] == "tampered"
    uri = result_["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri.endswith("plugin.sig")


def test_sarif_for_acceptance(cli, signed: Path, author) -> None:
    result = cli("plugin", "verify", signed, "--trust", author.public, *ALLOW, "--format", "sarif")
    [result_] = json.loads(result.stdout)["runs"][0]["results"]
    assert (result.code, result_["ruleId"], result_["level"]) == (0, "accepted", "none")
    assert result_["kind"] == "pass"


def test_sarif_for_a_usage_error(cli, signed: Path, tmp_path: Path) -> None:
    """CI that uploads SARIF gets a file even when verification could not start."""
    missing = tmp_path / "nowhere.pub"
    result = cli("plugin", "verify", signed, "--trust", missing, "--format", "sarif")
    assert result.code == 2
    [result_] = json.loads(result.stdout)["runs"][0]["results"]
    assert (result_["ruleId"], result_["level"]) == ("trust-state-invalid", "error")
    uri = result_["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri.startswith("file://") and uri.endswith("/plugin.sig")


def test_usage_error_json_has_the_same_fields(cli, signed: Path, author) -> None:
    result = cli(
        "plugin", "verify", signed, "--trust", author.public, "--now", "x", "--format", "json"
    )
    verdict = result.json
    assert verdict["reason"] == "invalid-now" and verdict["exitCode"] == result.code == 2
    assert "RFC 3339" in verdict["hint"]


def test_json_contract_fields(cli, signed: Path, author) -> None:
    result = cli("plugin", "verify", signed, "--trust", author.public, "--format", "json")
    verdict = result.json
    assert set(verdict) == {
        "schema",
        "accepted",
        "reason",
        "message",
        "hint",
        "exitCode",
        "plugin",
        "signers",
        "checks",
    }
    assert verdict["schema"] == "haechi.verdict.v1"
    assert verdict["exitCode"] == result.code == 13
    assert set(verdict["plugin"]) == {"id", "version", "kind", "digest"}
    assert verdict["checks"][-1] == {"name": "capabilities", "ok": False}


def test_reason_codes_are_documented() -> None:
    """docs/reference/verdict.md must list every reason code the verifier can return."""
    from haechi.trust import Reason

    doc = (Path(__file__).parent.parent / "docs" / "reference" / "verdict.md").read_text()
    missing = [r.value for r in Reason if f"`{r.value}`" not in doc]
    assert not missing, f"undocumented reason codes: {missing}"
