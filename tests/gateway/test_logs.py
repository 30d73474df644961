"""Structured logs are JSON lines with the extra fields, one per record."""

from __future__ import annotations

import json
import logging

from haechi.host.gateway.logs import JsonFormatter


def test_a_record_becomes_one_json_line_with_its_fields() -> None:
    record = logging.makeLogRecord(
        {"name": "haechi.gateway", "levelname": "WARNING", "msg": "plugin %s", "args": ("crash",)}
    )
    record.plugin = "pii-filter"
    line = JsonFormatter().format(record)
    assert "\n" not in line
    document = json.loads(line)
    assert document["message"] == "plugin crash"
    assert (document["level"], document["plugin"]) == ("warning", "pii-filter")
    assert document["ts"].endswith("Z")
