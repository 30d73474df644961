"""A gateway refusal and its JSON: what every refusal the gateway makes looks like to a client.

Raised by the pipeline (``app.py``) and built for the refusals aiohttp's parser makes
(``connections.py``); both answer with the same body (docs/reference/gateway-errors.md)::

    {"error": {"type": "haechi", "code": "blocked:card", "message": "..."}}
"""

from __future__ import annotations

import secrets
from typing import Any

__all__ = ["GatewayError", "error_body", "new_request_id"]


class GatewayError(Exception):
    """A refusal: HTTP ``status``, stable ``reason`` code and a message for the client."""

    def __init__(self, status: int, reason: str, message: str, **headers: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.headers = headers


def error_body(reason: str, message: str) -> dict[str, Any]:
    return {"error": {"type": "haechi", "code": reason, "message": message}}


def new_request_id() -> str:
    """16 hex digits naming one request in answers, logs and the audit chain."""
    return secrets.token_hex(8)
