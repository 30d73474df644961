"""The line format, and verify naming the first broken line for each kind of damage."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from haechi.host.audit import GENESIS, AuditError, verify
from haechi.host.audit.chain import parse_line

from . import lines_of, records, rehash, write_log


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    write_log(path, 20, rotate_bytes=None)
    return path


def edit(path: Path, number: int, new: bytes | None) -> None:
    """Replace (or with None delete) line ``number`` (1-based)."""
    lines = lines_of(path)
    if new is None:
        del lines[number - 1]
    else:
        lines[number - 1] = new
    path.write_bytes(b"".join(lines))


def broken_at(path: Path) -> tuple[int, str | None]:
    report = verify(path)
    assert not report.ok
    assert report.first_broken is not None
    assert report.first_broken.file == str(path)
    assert report.message.startswith(f"{path}:{report.first_broken.line}: {report.reason}: ")
    return report.first_broken.line, report.reason


def test_line_format_is_envelope_then_sorted_fields_and_hash_of_the_bytes(log: Path) -> None:
    first, second = lines_of(log)[:2]
    assert first.startswith(b'{"seq":1,"ts":"')
    assert b'"kind":"request","prev":"' + GENESIS.encode() + b'","actions":' in first
    preimage, _, rest = first.rpartition(b',"hash":"')
    assert rest == hashlib.sha256(preimage).hexdigest().encode() + b'"}\n'
    assert json.loads(second)["prev"] == json.loads(first)["hash"]
    assert first.isascii() and first.count(b"\n") == 1


def test_an_intact_log_verifies(log: Path) -> None:
    report = verify(log)
    assert report.ok, report.message
    assert (report.lines, report.reason, report.first_broken) == (20, None, None)
    assert report.head is not None and report.head.seq == 20
    assert report.head.hash == records(log)[-1]["hash"]


def test_an_edited_byte_is_a_hash_mismatch_on_that_line(log: Path) -> None:
    line = lines_of(log)[4]
    edit(log, 5, line.replace(b'"status":200', b'"status":201'))
    assert broken_at(log) == (5, "hash-mismatch")


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(log: Path) -> None:
    obj = records(log)[4] | {"status": 500}
    edit(log, 5, rehash(obj))
    assert broken_at(log) == (6, "prev-mismatch")


def test_a_deleted_line_is_a_sequence_gap(log: Path) -> None:
    edit(log, 5, None)
    assert broken_at(log) == (5, "sequence-gap")


def test_swapped_lines_are_a_sequence_gap(log: Path) -> None:
    lines = lines_of(log)
    lines[2], lines[3] = lines[3], lines[2]
    log.write_bytes(b"".join(lines))
    assert broken_at(log) == (3, "sequence-gap")


def test_a_dropped_first_line_is_a_sequence_gap(log: Path) -> None:
    edit(log, 1, None)
    assert broken_at(log) == (1, "sequence-gap")


def test_a_non_json_line(log: Path) -> None:
    edit(log, 7, b"hello world\n")
    assert broken_at(log) == (7, "not-json")


def test_duplicate_keys_are_not_json(log: Path) -> None:
    line = lines_of(log)[6]
    edit(log, 7, line.replace(b'{"seq":7,', b'{"seq":7,"seq":7,'))
    assert broken_at(log) == (7, "not-json")


def test_an_unknown_kind_even_with_a_valid_hash(log: Path) -> None:
    edit(log, 3, rehash(records(log)[2] | {"kind": "chat"}))
    assert broken_at(log) == (3, "unknown-kind")


def test_a_plaintext_field_even_with_a_valid_hash(log: Path) -> None:
    edit(log, 3, rehash(records(log)[2] | {"prompt": "my ssn is 078-05-1120"}))
    assert broken_at(log) == (3, "field-not-allowed")
    assert "prompt" in verify(log).message


def test_non_canonical_bytes_with_a_valid_hash(log: Path) -> None:
    preimage = (
        lines_of(log)[2].rpartition(b',"hash":"')[0].replace(b'"status":200', b'"status": 200')
    )
    forged = preimage + b',"hash":"' + hashlib.sha256(preimage).hexdigest().encode() + b'"}\n'
    edit(log, 3, forged)
    assert broken_at(log) == (3, "not-canonical")


def test_a_torn_tail_is_named_with_its_size(log: Path) -> None:
    with log.open("ab") as handle:
        handle.write(b'{"seq":21,"ts":"2026-01')
    line, reason = broken_at(log)
    assert (line, reason) == (21, "torn-line")
    assert "23 bytes" in verify(log).message


def test_parse_line_refuses_a_line_without_newline(log: Path) -> None:
    with pytest.raises(AuditError) as info:
        parse_line(lines_of(log)[0][:-1])
    assert info.value.reason == "torn-line"


def test_an_empty_file_verifies_with_no_lines(tmp_path: Path) -> None:
    (tmp_path / "audit.jsonl").write_bytes(b"")
    report = verify(tmp_path / "audit.jsonl")
    assert report.ok and report.lines == 0 and report.head is None


def test_usage_problems_raise(tmp_path: Path) -> None:
    with pytest.raises(AuditError) as info:
        verify(tmp_path / "missing.jsonl")
    assert info.value.reason == "no-audit-files"
    with pytest.raises(AuditError) as info:
        verify(tmp_path)
    assert info.value.reason == "no-audit-files"
    (tmp_path / "a.jsonl").write_bytes(b"")
    (tmp_path / "b.jsonl").write_bytes(b"")
    with pytest.raises(AuditError) as info:
        verify(tmp_path)
    assert info.value.reason == "several-series"


# --- rotation -----------------------------------------------------------------------------------


@pytest.fixture
def rotated(tmp_path: Path) -> Path:
    write_log(tmp_path / "audit.jsonl", 300, rotate_bytes=8192, max_batch=16)
    return tmp_path


def test_rotation_keeps_one_chain_across_files(rotated: Path) -> None:
    names = sorted(p.name for p in rotated.iterdir())
    archives = [n for n in names if n != "audit.jsonl"]
    assert len(archives) >= 3, names
    report = verify(rotated)
    assert report.ok, report.message
    assert report.files[-1] == str(rotated / "audit.jsonl")
    assert report.lines == 300 + len(archives)  # one rotate line per archive
    for n in range(2, len(archives) + 1):
        first = records(rotated / f"audit.{n}.jsonl")[0]
        before = records(rotated / f"audit.{n - 1}.jsonl")[-1]
        assert first["kind"] == "rotate" and first["previous_file"] == f"audit.{n - 1}.jsonl"
        assert first["prev"] == before["hash"] == first["previous_hash"]
        assert first["seq"] == before["seq"] + 1
    assert os.stat(rotated / "audit.jsonl").st_size <= 8192 + 16 * 1024


def test_each_file_of_a_series_verifies_on_its_own(rotated: Path) -> None:
    for path in rotated.iterdir():
        assert verify(path).ok, path


def test_a_missing_archive_is_a_rotation_gap(rotated: Path) -> None:
    (rotated / "audit.2.jsonl").unlink()
    report = verify(rotated)
    assert (report.ok, report.reason) == (False, "rotation-gap")
    assert report.first_broken is not None
    assert report.first_broken.file == str(rotated / "audit.3.jsonl")
    assert report.first_broken.line == 1


def test_removing_the_oldest_archives_still_verifies(rotated: Path) -> None:
    (rotated / "audit.1.jsonl").unlink()
    assert verify(rotated).ok


def test_a_rotate_line_in_the_middle_of_a_file_is_a_rotation_gap(rotated: Path) -> None:
    archive = rotated / "audit.2.jsonl"
    lines = lines_of(archive)
    archive.write_bytes(b"".join([*lines[:3], lines[0], *lines[3:]]))
    report = verify(rotated)
    assert report.reason == "rotation-gap"
    assert report.first_broken is not None
    assert (report.first_broken.file, report.first_broken.line) == (str(archive), 4)


def test_a_rotate_event_naming_the_wrong_file_is_a_rotation_gap(rotated: Path) -> None:
    active = rotated / "audit.jsonl"
    edit(active, 1, rehash(records(active)[0] | {"previous_file": "audit.9.jsonl"}))
    report = verify(rotated)
    assert report.reason == "rotation-gap"
    assert report.first_broken is not None
    assert (report.first_broken.file, report.first_broken.line) == (str(active), 1)
