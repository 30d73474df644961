"""Rendering a :class:`~haechi.trust.verify.Verdict` as text, JSON or SARIF 2.1.0.

The JSON form is a stable contract for CI (``docs/reference/verdict.md``); SARIF lets code-
scanning dashboards show a refusal next to the bundle. Example::

    >>> from haechi.trust.verify import Reason, Verdict
    >>> print(to_text(Verdict(False, Reason.EXPIRED, "expired at 2026-01-01T00:00:00Z")))
    ... # doctest: +ELLIPSIS
    REFUSED  expired: expired at 2026-01-01T00:00:00Z
    ...
"""

from __future__ import annotations

import json
from typing import Any

from ._internal.encoding import printable
from .verify import CHECK_NAMES, Reason, Verdict

__all__ = [
    "VERDICT_SCHEMA",
    "to_json",
    "to_json_dict",
    "to_sarif",
    "to_text",
    "usage_json_dict",
    "usage_sarif",
]

VERDICT_SCHEMA = "haechi.verdict.v1"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
TOOL_URI = "https://github.com/haechi-dev/haechi"


def to_json_dict(verdict: Verdict) -> dict[str, Any]:
    plugin = verdict.plugin
    return {
        "schema": VERDICT_SCHEMA,
        "accepted": verdict.accepted,
        "reason": verdict.reason.value,
        "message": verdict.message,
        "hint": verdict.reason.hint,
        "exitCode": verdict.exit_code,
        "plugin": None
        if plugin is None
        else {
            "id": plugin.id,
            "version": plugin.version,
            "kind": plugin.kind,
            "digest": plugin.digest,
        },
        "signers": list(verdict.signers),
        "checks": [{"name": c.name, "ok": c.ok} for c in verdict.checks],
    }


def to_json(verdict: Verdict) -> str:
    return json.dumps(to_json_dict(verdict), indent=2)


def to_text(verdict: Verdict) -> str:
    message = printable(verdict.message)
    if verdict.accepted:
        lines = [f"ACCEPTED {message}"]
    else:
        lines = [f"REFUSED  {verdict.reason.value}: {message}"]
    if verdict.plugin:
        p = verdict.plugin
        lines.append(f"  plugin   {p.id} {p.version} ({p.kind})")
        lines.append(f"  digest   {p.digest}")
    if verdict.signers:
        lines.append(f"  signers  {', '.join(verdict.signers)}")
    if verdict.checks:
        passed = sum(c.ok for c in verdict.checks)
        failed = [c.name for c in verdict.checks if not c.ok]
        summary = f"{passed} of {len(CHECK_NAMES)} passed"
        lines.append(
            f"  checks   {summary}, failed: {failed[0]}" if failed else f"  checks   {summary}"
        )
    if not verdict.accepted:
        lines.append(f"  what to do: {verdict.reason.hint}")
    return "\n".join(lines)


USAGE_HINTS = {
    "usage-error": "fix the command line; see `haechi plugin verify --help`",
    "invalid-now": "give --now as an RFC 3339 time with a zone, e.g. 2026-01-31T12:00:00Z",
    "trust-state-invalid": "fix the trust file as described, or point --trust at the right file",
    "trust-state-expired": "ask the operator for a fresh, re-signed trust state",
    "trust-state-rollback": "use the newest trust state; an update must raise its version",
}


def usage_json_dict(code: str, message: str) -> dict[str, Any]:
    """The verdict-shaped object printed when verification could not start (exit 2)."""
    return {
        "schema": VERDICT_SCHEMA,
        "accepted": False,
        "reason": code,
        "message": message,
        "hint": USAGE_HINTS.get(code, USAGE_HINTS["usage-error"]),
        "exitCode": 2,
        "plugin": None,
        "signers": [],
        "checks": [],
    }


def to_sarif(verdict: Verdict, *, tool_version: str, artifact: str) -> str:
    properties = to_json_dict(verdict)
    return _sarif(properties, tool_version=tool_version, artifact=artifact)


def usage_sarif(code: str, message: str, *, tool_version: str, artifact: str) -> str:
    return _sarif(usage_json_dict(code, message), tool_version=tool_version, artifact=artifact)


def _sarif(verdict: dict[str, Any], *, tool_version: str, artifact: str) -> str:
    """One run, one result; ``verdict`` is the JSON form, kept in the result's properties."""
    rules = [
        {
            "id": reason.value,
            "name": reason.name.title().replace("_", ""),
            "shortDescription": {"text": reason.value.replace("-", " ")},
            "help": {"text": reason.hint},
        }
        for reason in Reason
    ]
    rule_ids = [rule["id"] for rule in rules]
    if verdict["reason"] not in rule_ids:
        rules.append(
            {
                "id": verdict["reason"],
                "name": verdict["reason"].title().replace("-", ""),
                "shortDescription": {"text": verdict["reason"].replace("-", " ")},
                "help": {"text": verdict["hint"]},
            }
        )
        rule_ids.append(verdict["reason"])
    accepted = verdict["accepted"]
    result = {
        "ruleId": verdict["reason"],
        "ruleIndex": rule_ids.index(verdict["reason"]),
        # SARIF 2.1.0 §3.27.9-10: a passing result has kind "pass" and level "none".
        "level": "none" if accepted else "error",
        "kind": "pass" if accepted else "fail",
        "message": {"text": f"{verdict['message']}. {verdict['hint']}."},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": artifact}}}],
        "properties": verdict,
    }
    document = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "haechi",
                        "version": tool_version,
                        "informationUri": TOOL_URI,
                        "rules": rules,
                    }
                },
                "results": [result],
                "properties": {"checks": list(CHECK_NAMES)},
            }
        ],
    }
    return json.dumps(document, indent=2)
