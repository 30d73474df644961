"""docs/reference/gateway-errors.md lists every reason code the gateway can refuse with.

Clients match on these codes, so a code the source raises but the reference does not list (or
a row for a code nothing raises any more) is a broken contract. The source is read with ``ast``:
every ``GatewayError`` / ``ResponseRefused`` / ``BodyError`` built with a literal
code, or with a module constant holding one.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "host" / "gateway"
REFERENCE = ROOT / "docs" / "reference" / "gateway-errors.md"

# Call -> index of the argument holding the code.
REFUSALS = {"GatewayError": 1, "ResponseRefused": 1, "BodyError": 0}

# Codes built at run time from another value; each row names where it comes from.
DYNAMIC = {
    "unauthenticated:<reason>",  # app.py: f"unauthenticated:{outcome.reason}"
    "blocked:<type>",  # policy.py: the outcome's reason for an applied block
    "response-blocked:<type>",  # responses.py: f"response-{outcome.reason}"
    "response-invalid-detection",  # responses.py: likewise, for a faulty filter
    "auth-unavailable",  # plugins.py: AuthOutcome.reason, passed through by app.py
    "no-auth-plugin",  # plugins.py: likewise
    "upstream-timeout-mid-stream",  # app.py: the stream's error event, not a status
}


def _constants(trees: list[ast.Module]) -> dict[str, str]:
    found = {}
    for tree in trees:
        for node in tree.body:
            # NAME = "code" and NAME: Final = "code"
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            else:
                continue
            literal = isinstance(value, ast.Constant) and isinstance(value.value, str)
            if isinstance(target, ast.Name) and literal:
                found[target.id] = value.value  # type: ignore[attr-defined]
    return found


def raised() -> list[tuple[int | None, str]]:
    """``(status, code)`` of every refusal built with a literal code (status None: not literal,
    or a BodyError, whose status app.py picks)."""
    trees = [ast.parse(p.read_text(encoding="utf-8")) for p in sorted(SOURCE.rglob("*.py"))]
    constants = _constants(trees)
    found = []
    for tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            index = REFUSALS.get(node.func.id)
            if index is None or len(node.args) <= index:
                continue
            arg, code = node.args[index], None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                code = arg.value
            elif isinstance(arg, ast.Name) and arg.id in constants:
                code = constants[arg.id]
            if code is None:
                continue
            first = node.args[0]
            literal = index == 1 and isinstance(first, ast.Constant) and type(first.value) is int
            found.append((first.value if literal else None, code))  # type: ignore[union-attr]
    return found


def raised_codes() -> set[str]:
    return {code for _, code in raised()}


def documented() -> dict[str, int]:
    """Code -> status, from the table's rows."""
    rows = {}
    for line in REFERENCE.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 3 and re.fullmatch(r"\d{3}", cells[1]):
            for code in re.findall(r"`([^`]+)`", cells[2]):
                rows[code] = int(cells[1])
    return rows


def documented_codes() -> set[str]:
    return set(documented())


def test_the_scan_finds_the_codes_it_should() -> None:
    # Guards the scanner itself: if it found nothing, the checks below would pass vacuously.
    assert {"not-found", "header-too-large", "invalid-body", "response-uninspectable"} <= (
        raised_codes()
    )


def test_every_raised_code_is_documented() -> None:
    missing = raised_codes() - documented_codes()
    assert not missing, f"add these codes to {REFERENCE.name}: {sorted(missing)}"


def test_each_code_is_documented_with_the_status_it_is_raised_with() -> None:
    table = documented()
    wrong = {
        code: (status, table.get(code))
        for status, code in raised()
        if status is not None and table.get(code) not in (None, status)
    }
    assert not wrong, f"code: (raised with, documented as): {wrong}"


def test_every_documented_code_is_raised() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    stale = documented_codes() - raised_codes() - DYNAMIC
    assert not stale, f"{REFERENCE.name} lists codes nothing raises: {sorted(stale)}"
    for code in DYNAMIC:
        assert f"`{code}`" in text, code
