"""Structured logs: one JSON object per line on stderr, for the operator's log pipeline.

What is logged is operational (start, listen, stop, plugin lifecycle, trust changes, worker
restarts), never request content: the audit chain records requests, and its schema keeps
plaintext out; these logs have no schema, so nothing from a request body goes into them.

Example::

    configure_logging()
    logging.getLogger("haechi.gateway").info("listening", extra={"port": 8080})
    # {"ts": "2026-11-28T14:40:00.123Z", "level": "info", "logger": "haechi.gateway",
    #  "message": "listening", "port": 8080}
"""

from __future__ import annotations

import json
import logging
import sys
import time

__all__ = ["JsonFormatter", "configure_logging"]

# Attributes every LogRecord has; anything else was passed with extra= and is a field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        document = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str, ensure_ascii=False)


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
