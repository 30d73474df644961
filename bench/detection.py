"""Detection quality of the first-party filter plugins over the labelled corpus.

Runs the ``inspect`` hook of ``plugins/pii-filter`` and ``plugins/secret-filter`` in-process
(no sandbox: this measures what they find, not how fast) over every case in
``tests/corpus/detection/*.jsonl`` and scores each detection type:

* TP: an expected span that a detection of the same type overlaps;
* FN: an expected span that no detection of its type overlaps;
* FP: a detection that overlaps no expected span of its type;
* exact: TPs where some detection has exactly the expected ``[start, end)``.

Usage (from the repository root)::

    .venv/bin/python bench/detection.py                 # table; exit 1 below the targets
    .venv/bin/python bench/detection.py --errors        # also list every FP and FN
    .venv/bin/python bench/detection.py --json          # machine-readable
    .venv/bin/python bench/detection.py --no-gate       # never fail on the figures

The gate: overall precision >= 0.98 and recall >= 0.99 (``--min-precision``,
``--min-recall``). The scoring functions are also used by ``tests/plugins/test_detection.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = (ROOT / "plugins" / "pii-filter", ROOT / "plugins" / "secret-filter")
CORPUS = ROOT / "tests" / "corpus" / "detection"
MIN_PRECISION = 0.98
MIN_RECALL = 0.99

Inspect = Callable[..., list]


@contextmanager
def _bundle_on_path(bundle: Path) -> Iterator[None]:
    """Let the bundle's entry import its sibling modules, then forget them again.

    Both bundles ship a ``textspan`` module; forgetting each bundle's own modules after
    loading keeps one bundle from silently using the other's copy.
    """
    before = set(sys.modules)
    sys.path.insert(0, str(bundle))
    # A __pycache__ inside the bundle would become part of what gets signed and shipped.
    writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        yield
    finally:
        sys.dont_write_bytecode = writes_bytecode
        sys.path.remove(str(bundle))
        for name in set(sys.modules) - before:
            origin = getattr(sys.modules[name], "__file__", None) or ""
            if Path(origin).parent == bundle:
                del sys.modules[name]


def load_plugin(bundle: Path) -> ModuleType:
    """Import ``bundle/plugin.py`` as a fresh module (not the sandbox: in-process)."""
    spec = importlib.util.spec_from_file_location(f"bundle_{bundle.name}", bundle / "plugin.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with _bundle_on_path(bundle):
        spec.loader.exec_module(module)
    return module


def load_inspectors(bundles: tuple[Path, ...] = BUNDLES) -> list[Inspect]:
    return [load_plugin(bundle).inspect for bundle in bundles]


def load_corpus(directory: Path = CORPUS) -> list[dict]:
    cases = []
    for path in sorted(directory.glob("*.jsonl")):
        with path.open(encoding="utf-8") as lines:
            cases.extend(json.loads(line) for line in lines if line.strip())
    return cases


def detect(inspectors: list[Inspect], text: str) -> list[dict]:
    found = []
    for inspect in inspectors:
        for d in inspect([text], ctx=None):
            found.append({"type": d.type, "start": d.start, "end": d.end, "label": d.label})
    return found


def _overlaps(a: dict, b: dict) -> bool:
    return a["type"] == b["type"] and a["start"] < b["end"] and b["start"] < a["end"]


def score(cases: list[dict], inspectors: list[Inspect]) -> dict:
    """Per-type and overall TP/FP/FN/exact, plus the errors (case id, kind, span, text)."""
    per_type: dict[str, dict[str, int]] = {}
    errors = []

    def bump(kind: str, field: str) -> None:
        per_type.setdefault(kind, {"tp": 0, "fp": 0, "fn": 0, "exact": 0})[field] += 1

    for case in cases:
        text, expected = case["text"], case["expect"]
        found = detect(inspectors, text)
        for want in expected:
            hits = [f for f in found if _overlaps(f, want)]
            bump(want["type"], "tp" if hits else "fn")
            if any(f["start"] == want["start"] and f["end"] == want["end"] for f in hits):
                bump(want["type"], "exact")
            if not hits:
                errors.append(_error(case, "FN", want))
        for got in found:
            if not any(_overlaps(got, want) for want in expected):
                bump(got["type"], "fp")
                errors.append(_error(case, "FP", got))
    total = {
        field: sum(t[field] for t in per_type.values()) for field in ("tp", "fp", "fn", "exact")
    }
    for figures in [*per_type.values(), total]:
        figures["precision"] = _ratio(figures["tp"], figures["tp"] + figures["fp"])
        figures["recall"] = _ratio(figures["tp"], figures["tp"] + figures["fn"])
    return {
        "cases": len(cases),
        "types": dict(sorted(per_type.items())),
        "overall": total,
        "errors": errors,
    }


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 1.0


def _error(case: dict, kind: str, span: dict) -> dict:
    value = case["text"][span["start"] : span["end"]]
    return {"case": case["id"], "kind": kind, **span, "value": value[:80]}


def render(result: dict) -> str:
    header = (
        f"| {'type':<12} | {'TP':>4} | {'FP':>3} | {'FN':>3} | precision | recall | exact spans |"
    )
    rows = [header, "|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|"]
    for name, t in [*result["types"].items(), ("**overall**", result["overall"])]:
        rows.append(
            f"| {name:<12} | {t['tp']:>4} | {t['fp']:>3} | {t['fn']:>3} |"
            f" {t['precision']:>9.4f} | {t['recall']:>6.4f} | {t['exact']:>4} / {t['tp']:<4} |"
        )
    return "\n".join(rows)


def meets(result: dict, min_precision: float, min_recall: float) -> bool:
    overall = result["overall"]
    return overall["precision"] >= min_precision and overall["recall"] >= min_recall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--errors", action="store_true", help="list every FP and FN")
    parser.add_argument("--no-gate", action="store_true", help="exit 0 whatever the figures")
    parser.add_argument("--min-precision", type=float, default=MIN_PRECISION)
    parser.add_argument("--min-recall", type=float, default=MIN_RECALL)
    args = parser.parse_args(argv)

    result = score(load_corpus(), load_inspectors())
    passed = meets(result, args.min_precision, args.min_recall)
    if args.json:
        print(json.dumps({**result, "gate_passed": passed}, ensure_ascii=False, indent=2))
    else:
        positives = result["overall"]["tp"] + result["overall"]["fn"]
        print(f"{result['cases']} cases, {positives} expected spans\n")
        print(render(result))
        if args.errors:
            for e in result["errors"]:
                print(
                    f"{e['kind']} {e['case']} {e['type']} [{e['start']}, {e['end']}) {e['value']!r}"
                )
        verdict = "meets" if passed else "MISSES"
        print(
            f"\n{verdict} the targets: precision >= {args.min_precision}, "
            f"recall >= {args.min_recall}"
        )
    return 0 if passed or args.no_gate else 1


if __name__ == "__main__":
    sys.exit(main())
