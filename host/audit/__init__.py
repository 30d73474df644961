"""haechi's audit log: hash-chained JSON lines, an allow-listed schema, group commit.

Rules the package enforces (details in each module and in docs/reference/audit.md):

1. No plaintext: every event kind has an allow-list of fields, each with a bounded value rule
   and no free-form text (:mod:`.schema`). Refusals raise :class:`AuditError`.
2. Integrity: each line carries the sha256 of its own bytes and the hash of the line before,
   with a sequence number that never skips, across rotated files (:mod:`.chain`).
3. Durability: ``await log.append(...)`` returns after its batch is written (and fsynced per
   policy); processes share one chain via ``flock``; torn tails are repaired (:mod:`.log`).
4. Verification names the first broken line and why (:mod:`.verify`).

Example::

    import asyncio
    from pathlib import Path
    from haechi.host.audit import AuditConfig, AuditLog, verify

    async def main() -> None:
        async with await AuditLog.open(AuditConfig(Path("audit/audit.jsonl"))) as log:
            await log.append("plugin", plugin="pii-filter", event="spawn", pid=4242)

    asyncio.run(main())
    assert verify("audit").ok
"""

from __future__ import annotations

from .chain import GENESIS, ChainHead
from .log import AuditConfig, AuditLog, FsyncPolicy
from .schema import SCHEMAS, AuditError, EventSchema, FieldSpec, principal_hash, validate
from .verify import Location, VerifyReport, verify

__all__ = [
    "GENESIS",
    "SCHEMAS",
    "AuditConfig",
    "AuditError",
    "AuditLog",
    "ChainHead",
    "EventSchema",
    "FieldSpec",
    "FsyncPolicy",
    "Location",
    "VerifyReport",
    "principal_hash",
    "validate",
    "verify",
]
