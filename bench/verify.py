#!/usr/bin/env python3
"""Verifications per second of haechi.trust, as a ratio against the bare crypto work.

Two bundles are generated in a temporary directory and signed with a throwaway key:

* ``1-file``: ``plugin.toml`` plus one 2048-byte entry ``plugin.py`` (2 files on disk, plus
  ``plugin.sig``). "1-file" counts the payload file only; the manifest is always there.
* ``50-file``: ``plugin.toml`` plus 49 files of 2048 bytes (``plugin.py`` at the top, 24 in
  ``pkg/``, 24 in ``pkg/data/``): 50 files on disk counting the manifest, plus ``plugin.sig``.

For each bundle two candidates are timed:

* ``directory``: ``verify_directory(dir, ...)``, the full path (walk and read the files, parse
  the manifest and envelope, verify). The files are in the page cache, so this is a warm read.
* ``in-memory``: ``verify_bundle(bundle, ...)`` on a Bundle that was read once beforehand.

The baseline is the irreducible crypto work for the same bundle: one Ed25519 verify of the real
64-byte signature over the real signed message (the envelope payload plus its ~50-byte DSSE
header), with a VerifyKey built once, plus one ``hashlib.sha256`` over each bundle file's bytes.
Within every repeat the candidate and the baseline alternate in short slices (A B A B ...,
``--slice`` seconds each) until each has run ``--seconds``, so drift or a neighbour's burst on a
noisy machine hits both; the ratio (candidate cost / baseline cost) is taken per repeat and
reported as median and min-max over repeats. Every candidate call checks that the verdict is
accepted, so a refusal can never be timed by mistake.

Run ``python bench/verify.py --help`` for the options; results live in bench/results/verify.md.
Standard library and haechi's own dependencies only.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import haechi.trust
import nacl
import nacl.signing
from _machine import machine_facts
from haechi.trust import (
    PLUGIN_PAYLOAD_TYPE,
    Bundle,
    Envelope,
    SigningKey,
    TrustState,
    read_bundle,
    sign_bundle,
    verify_bundle,
    verify_directory,
)

HOST_VERSION = "0.1.0"
FILE_BYTES = 2048
LINE_BYTES = 64
CALIBRATE_SECONDS = 0.2
BATCH_SECONDS = 0.005
CANDIDATES = ("directory", "in-memory")

MANIFEST = """\
id = "bench-filter"
version = "1.0.0"
kind = "filter"
entry = "plugin.py"
description = "haechi verify benchmark bundle ({label})"
requires-host = ">=0.1"
capabilities = ["request:body-text"]
"""


# --- bundles -------------------------------------------------------------------------------


def filler(path: str, size: int = FILE_BYTES) -> bytes:
    """Deterministic Python-looking source of exactly ``size`` bytes, distinct per path."""
    lines = [f"# {path}: generated filler for bench/verify.py".ljust(LINE_BYTES - 1)]
    index = 0
    while len(lines) * LINE_BYTES < size:
        lines.append(
            f"VALUE_{index:04d} = {index * 7919 % 100003:6d}  # {path}".ljust(LINE_BYTES - 1)
        )
        index += 1
    data = "".join(line[: LINE_BYTES - 1] + "\n" for line in lines).encode("ascii")
    return data[: size - 1] + b"\n"


def bundle_paths(payload: int) -> list[str]:
    """``payload`` files besides plugin.toml: the entry, the rest split over pkg/, pkg/data/."""
    paths = ["plugin.py"]
    extra = payload - 1
    half = extra // 2
    paths += [f"pkg/mod_{i:02d}.py" for i in range(half)]
    paths += [f"pkg/data/part_{i:02d}.py" for i in range(extra - half)]
    return paths


def write_bundle(directory: Path, label: str, payload: int) -> None:
    directory.mkdir()
    (directory / "plugin.toml").write_text(MANIFEST.format(label=label), encoding="utf-8")
    for path in bundle_paths(payload):
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(filler(path))


@dataclass
class Case:
    """One signed bundle and the callables timed against it."""

    label: str
    directory: Path
    files: int
    file_bytes: int
    payload_bytes: int
    message_bytes: int
    candidates: dict[str, Callable[[], None]]
    baseline: Callable[[], None]


def make_case(
    root: Path, label: str, payload: int, key: SigningKey, now: datetime, host_version: str
) -> Case:
    directory = root / label
    write_bundle(directory, label, payload)
    sign_bundle(directory, key, now=now)

    bundle: Bundle = read_bundle(directory)
    if bundle.signature is None or len(bundle.files) != payload + 1:
        raise SystemExit(f"{label}: expected {payload + 1} signed files, got {list(bundle.files)}")
    state = TrustState.from_anchors([key.anchor()]).with_capabilities(bundle.manifest.capabilities)

    # Pre-flight: both paths must accept this bundle, or we would be timing a refusal.
    for verdict in (
        verify_directory(directory, state, host_version=host_version, now=now),
        verify_bundle(bundle, state, host_version=host_version, now=now),
    ):
        if not verdict.accepted:
            raise SystemExit(f"{label}: not accepted: {verdict.reason}: {verdict.message}")

    def run_directory() -> None:
        verdict = verify_directory(directory, state, host_version=host_version, now=now)
        if not verdict.accepted:
            raise AssertionError(f"{label}: directory: {verdict.reason}: {verdict.message}")

    def run_memory() -> None:
        verdict = verify_bundle(bundle, state, host_version=host_version, now=now)
        if not verdict.accepted:
            raise AssertionError(f"{label}: in-memory: {verdict.reason}: {verdict.message}")

    # Baseline: the real signature over the real signed message, and one sha256 per file.
    envelope = Envelope.from_json(bundle.signature, PLUGIN_PAYLOAD_TYPE)
    (signature,) = envelope.signatures
    message = envelope.signed_message
    verify_key = nacl.signing.VerifyKey(key.public_key)
    verify_key.verify(message, signature.sig)  # raises if the baseline itself is wrong
    blobs = tuple(bundle.files.values())
    sha256 = hashlib.sha256
    sig = signature.sig

    def run_baseline() -> None:
        verify_key.verify(message, sig)
        for data in blobs:
            sha256(data).digest()

    return Case(
        label=label,
        directory=directory,
        files=len(bundle.files),
        file_bytes=sum(len(b) for b in blobs),
        payload_bytes=len(envelope.payload),
        message_bytes=len(message),
        candidates={"directory": run_directory, "in-memory": run_memory},
        baseline=run_baseline,
    )


# --- timing --------------------------------------------------------------------------------


def calibrate(fn: Callable[[], None]) -> int:
    """Warm ``fn`` up and return a batch size that takes about BATCH_SECONDS."""
    calls = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < CALIBRATE_SECONDS:
        fn()
        calls += 1
    return max(1, round(calls * BATCH_SECONDS / elapsed))


def timed_slice(fn: Callable[[], None], batch: int, seconds: float) -> tuple[int, float]:
    """Call ``fn`` in batches for at least ``seconds``; return (calls, elapsed seconds)."""
    calls = 0
    start = time.perf_counter()
    while True:
        for _ in range(batch):
            fn()
        calls += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls, elapsed


def paired_rates(
    candidate: tuple[Callable[[], None], int],
    baseline: tuple[Callable[[], None], int],
    seconds: float,
    slice_seconds: float,
) -> tuple[float, float]:
    """Alternate candidate and baseline slices (A B A B ...) until each has run ``seconds``.

    Returns (candidate calls/s, baseline calls/s). Short alternating slices mean a burst of
    load from a neighbour lands on both sides of the ratio, not on one whole measurement.
    """
    gc.collect()
    calls = [0, 0]
    elapsed = [0.0, 0.0]
    while min(elapsed) < seconds:
        for side, (fn, batch) in enumerate((candidate, baseline)):
            n, t = timed_slice(fn, batch, min(slice_seconds, seconds))
            calls[side] += n
            elapsed[side] += t
    return calls[0] / elapsed[0], calls[1] / elapsed[1]


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run(
    cases: list[Case], seconds: float, repeat: int, slice_seconds: float
) -> list[dict[str, Any]]:
    batches: dict[tuple[str, str], int] = {}
    for case in cases:
        batches[case.label, "baseline"] = calibrate(case.baseline)
        for name, fn in case.candidates.items():
            batches[case.label, name] = calibrate(fn)

    samples: dict[tuple[str, str], tuple[list[float], list[float]]] = {
        (case.label, name): ([], []) for case in cases for name in CANDIDATES
    }
    for r in range(repeat):
        for case in cases:
            for name in CANDIDATES:
                candidate, baseline = samples[case.label, name]
                rates = paired_rates(
                    (case.candidates[name], batches[case.label, name]),
                    (case.baseline, batches[case.label, "baseline"]),
                    seconds,
                    slice_seconds,
                )
                candidate.append(rates[0])
                baseline.append(rates[1])
                print(
                    f"repeat {r + 1}/{repeat} {case.label:>7} {name:<9} "
                    f"{candidate[-1]:9.0f}/s  baseline {baseline[-1]:9.0f}/s",
                    file=sys.stderr,
                )

    results = []
    for case in cases:
        for name in CANDIDATES:
            candidate, baseline = samples[case.label, name]
            ratios = [b / c for c, b in zip(candidate, baseline, strict=True)]
            results.append(
                {
                    "bundle": case.label,
                    "files": case.files,
                    "file_bytes": case.file_bytes,
                    "payload_bytes": case.payload_bytes,
                    "signed_message_bytes": case.message_bytes,
                    "candidate": name,
                    "candidate_ops": summary(candidate),
                    "baseline_ops": summary(baseline),
                    "ratio": summary(ratios),
                    "samples": {"candidate_ops": candidate, "baseline_ops": baseline},
                }
            )
    return results


# --- output --------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        **machine_facts(),
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "pynacl": nacl.__version__,
    }


def source_state() -> dict[str, Any]:
    """Which haechi.trust was measured: its path, the git commit, uncommitted changes."""
    trust_dir = Path(haechi.trust.__file__).resolve().parent
    state: dict[str, Any] = {"trust": str(trust_dir), "commit": None, "uncommitted": []}
    try:
        git = ["git", "-C", str(trust_dir)]
        state["commit"] = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            [*git, "status", "--porcelain", "--", "."], capture_output=True, text=True, check=True
        )
        state["uncommitted"] = [line.strip() for line in status.stdout.splitlines()]
    except (OSError, subprocess.CalledProcessError):
        pass
    return state


def table(results: list[dict[str, Any]]) -> str:
    def span(stats: dict[str, float], fmt: str) -> str:
        return f"{stats['median']:{fmt}} ({stats['min']:{fmt}}–{stats['max']:{fmt}})"

    rows = [
        "| bundle | files incl. plugin.toml (bytes) | candidate | candidate verif/s "
        "| baseline ops/s | ratio: verify / baseline cost |",
        "|---|---|---|---:|---:|---:|",
    ]
    for res in results:
        rows.append(
            f"| {res['bundle']} | {res['files']} ({res['file_bytes']}) | {res['candidate']} "
            f"| {span(res['candidate_ops'], ',.0f')} | {span(res['baseline_ops'], ',.0f')} "
            f"| {span(res['ratio'], '.1f')}× |"
        )
    return "\n".join(rows)


def profile(case: Case, candidate: str, seconds: float, top: int) -> str:
    """cProfile the candidate for ``seconds``; the top functions by internal time."""
    fn = case.candidates[candidate]
    profiler = cProfile.Profile()
    calls = 0
    start = time.perf_counter()
    profiler.enable()
    while time.perf_counter() - start < seconds:
        fn()
        calls += 1
    profiler.disable()
    out = io.StringIO()
    print(f"cProfile: {case.label} {candidate}, {calls} calls", file=out)
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/verify.py",
        description=(
            "Verifications per second of haechi.trust.verify_directory and verify_bundle on a "
            "generated 1-file and 50-file bundle, as ratios against the bare crypto work "
            "(one Ed25519 verify + sha256 of every file) measured in the same run."
        ),
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=0.5,
        help=("seconds each of candidate and baseline runs per measurement (default: %(default)s)"),
    )
    parser.add_argument(
        "--slice",
        type=float,
        default=0.1,
        dest="slice_seconds",
        metavar="SECONDS",
        help=(
            "candidate and baseline alternate in slices of this many seconds within each "
            "measurement (default: %(default)s)"
        ),
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="candidate/baseline pairs per bundle and candidate (default: %(default)s)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print machine-readable results on stdout"
    )
    parser.add_argument(
        "--profile",
        metavar="BUNDLE:CANDIDATE",
        help=(
            "instead of timing, run cProfile on one case for --seconds and print the top "
            "functions, e.g. 50-file:directory"
        ),
    )
    parser.add_argument(
        "--top", type=int, default=20, help="rows to print with --profile (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.slice_seconds <= 0:
        parser.error("--seconds and --slice must be positive")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.profile is not None:
        label, _, candidate = args.profile.partition(":")
        if label not in ("1-file", "50-file") or candidate not in CANDIDATES:
            parser.error(
                "--profile takes BUNDLE:CANDIDATE with BUNDLE 1-file or 50-file and CANDIDATE "
                f"one of {', '.join(CANDIDATES)}"
            )
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    source = source_state()  # before timing: the modules are already imported
    key = SigningKey.generate()  # throwaway: never written anywhere but the temp bundles
    now = datetime.now(UTC)
    started = now.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    with tempfile.TemporaryDirectory(prefix="haechi-bench-") as temp:
        root = Path(temp)
        cases = [
            make_case(root, "1-file", 1, key, now, HOST_VERSION),
            make_case(root, "50-file", 49, key, now, HOST_VERSION),
        ]
        if args.profile is not None:
            label, _, candidate = args.profile.partition(":")
            case = next(c for c in cases if c.label == label)
            print(profile(case, candidate, args.seconds, args.top))
            return 0
        results = run(cases, args.seconds, args.repeat, args.slice_seconds)

    report = {
        "benchmark": "bench/verify.py",
        "date": started,
        "command": " ".join(["python", "bench/verify.py", *argv]),
        "seconds": args.seconds,
        "repeat": args.repeat,
        "slice_seconds": args.slice_seconds,
        "host_version": HOST_VERSION,
        "source": source,
        "machine": machine(),
        "results": results,
    }
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        info = report["machine"]
        print(
            f"{report['date']}  {info['machine']}, nproc {info['nproc']}, {info['python']}, "
            f"pynacl {info['pynacl']}; {args.repeat} repeats of {args.seconds} s per side, "
            f"alternating in {args.slice_seconds} s slices"
        )
        dirty = ", ".join(source["uncommitted"]) or "none"
        print(f"haechi.trust from {source['trust']} at {source['commit']}; uncommitted: {dirty}")
        print()
        print(table(results))
        print()
        print("Cells: median (min–max) over repeats. Ratio = baseline ops/s ÷ candidate ops/s,")
        print("taken per repeat from interleaved slices: how many times the bare crypto work")
        print("(one Ed25519 verify + sha256 of each file) one verification costs.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
