"""Trust state: which keys an operator trusts, and the policy every plugin must meet.

Rules this module owns:

* a state document has a ``version`` (integer >= 1) and an ``expires`` time; an expired state
  is refused, never used "just this once";
* unknown keys, duplicate anchors, conflicting pins, upper-case or short hashes and thresholds
  no anchor set can meet are errors naming the field;
* a document that declares ``[roots]`` is only trusted in its signed form, signed by at least
  ``roots.threshold`` distinct root keys;
* an update must carry a higher ``version`` and be signed by a threshold of the *previous*
  roots as well as its own, so neither a replayed old state nor a new set of roots slipped in
  by one key is accepted (:func:`check_update`).

The same document is read by ``haechi plugin verify`` in CI and by the gateway. Example::

    >>> from datetime import datetime, timezone
    >>> state = TrustState.from_document({
    ...     "version": 1, "expires": "2099-01-01T00:00:00Z",
    ...     "capabilities": {"allow": ["state:kv"]}})
    >>> "state:kv" in state.allowed_capabilities
    True
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ._internal.encoding import (
    DecodeError,
    b64encode,
    canonical_json,
    format_time,
    load_toml,
    parse_time,
    printable,
    strict_json_loads,
)
from ._internal.files import FileReadError, read_regular
from ._internal.semver import SemVer
from .envelope import TRUST_PAYLOAD_TYPE, Envelope
from .errors import EnvelopeError, KeyFileError, ManifestError, TrustStateError
from .keys import KINDS, Anchor, SigningKey, load_anchor, parse_anchor
from .manifest import check_capability_name, check_plugin_id

__all__ = [
    "Roots",
    "StateCode",
    "TrustState",
    "check_update",
    "is_signed_state",
    "load_trust",
    "read_state",
    "read_state_bytes",
    "read_state_envelope",
    "sign_state",
]

MAX_STATE_BYTES = 4 * 1024 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_TOP_KEYS = (
    "version",
    "expires",
    "anchors",
    "thresholds",
    "revoked",
    "floors",
    "pins",
    "capabilities",
    "roots",
)


class StateCode:
    """Reason codes for a trust state that cannot be used (CLI exit 2)."""

    INVALID = "trust-state-invalid"
    EXPIRED = "trust-state-expired"
    ROLLBACK = "trust-state-rollback"


def _fail(message: str, code: str = StateCode.INVALID) -> TrustStateError:
    return TrustStateError(message, code)


@dataclass(frozen=True)
class Roots:
    """The keys that may sign the trust state itself, and how many must."""

    threshold: int
    anchors: tuple[Anchor, ...]

    def count_valid(self, envelope: Envelope) -> tuple[str, ...]:
        """Distinct root key ids whose signature over the envelope verifies."""
        by_id = {a.keyid: a for a in self.anchors}
        valid: dict[str, None] = {}
        for signature in envelope.signatures:
            anchor = by_id.get(signature.keyid)
            if anchor and anchor.verify(envelope.signed_message, signature.sig):
                valid[signature.keyid] = None
        return tuple(valid)


@dataclass(frozen=True)
class TrustState:
    """A validated trust state. Build with :meth:`from_document`, :func:`load_trust`."""

    anchors: Mapping[str, Anchor] = field(default_factory=lambda: MappingProxyType({}))
    thresholds: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    revoked_keys: frozenset[str] = frozenset()
    revoked_digests: frozenset[str] = frozenset()
    revoked_plugins: frozenset[str] = frozenset()
    floors: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    pins: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    allowed_capabilities: frozenset[str] = frozenset()
    version: int | None = None
    expires: datetime | None = None
    roots: Roots | None = None
    signed_by: tuple[str, ...] = ()
    source: str = ""

    def threshold(self, kind: str) -> int:
        return self.thresholds.get(kind, 1)

    def release_revoked(self, plugin_id: str, version: SemVer) -> bool:
        """``id@version`` is revoked; build metadata does not escape it (1.0.0+b2 = 1.0.0)."""
        for entry in self.revoked_plugins:
            revoked_id, _, revoked_version = entry.partition("@")
            if revoked_id == plugin_id and SemVer.parse(revoked_version) == version:
                return True
        return False

    def with_capabilities(self, names: Iterable[str]) -> TrustState:
        """A copy whose allowlist also names ``names`` (the CLI's --allow-capability)."""
        extra = frozenset(check_capability_name(n, "--allow-capability") for n in names)
        return replace(self, allowed_capabilities=self.allowed_capabilities | extra)

    @classmethod
    def from_anchors(cls, anchors: Iterable[Anchor], source: str = "") -> TrustState:
        table: dict[str, Anchor] = {}
        for anchor in anchors:
            if anchor.keyid in table:
                raise _fail(f"{source}: anchor {anchor.keyid} is given twice")
            table[anchor.keyid] = anchor
        return cls(anchors=MappingProxyType(table), source=source)

    @classmethod
    def from_document(cls, doc: object, source: str = "trust state") -> TrustState:
        """Validate a parsed TOML/JSON document (every error names the field)."""
        try:
            return _parse_document(doc, source)
        except (KeyFileError, ManifestError) as exc:
            raise _fail(f"{source}: {exc}") from None
        except TrustStateError as exc:
            raise _fail(f"{source}: {exc}", exc.code) from None

    def to_document(self) -> dict[str, Any]:
        """The canonical document: what ``trust sign`` signs and ``trust show`` prints."""
        doc: dict[str, Any] = {
            "version": self.version,
            "expires": format_time(self.expires) if self.expires else None,
            "anchors": [_anchor_doc(a, kinds=True) for a in self.anchors.values()],
            "thresholds": dict(self.thresholds),
            "revoked": {
                "keys": sorted(self.revoked_keys),
                "digests": sorted(self.revoked_digests),
                "plugins": sorted(self.revoked_plugins),
            },
            "floors": dict(self.floors),
            "pins": dict(self.pins),
            "capabilities": {"allow": sorted(self.allowed_capabilities)},
        }
        if self.roots:
            doc["roots"] = {
                "threshold": self.roots.threshold,
                "keys": [_anchor_doc(a, kinds=False) for a in self.roots.anchors],
            }
        return doc


def _anchor_doc(anchor: Anchor, *, kinds: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "keyid": anchor.keyid,
        "algorithm": anchor.algorithm,
        "public-key": b64encode(anchor.public_key),
    }
    if kinds:
        doc["kinds"] = list(anchor.kinds)
    return doc


def _table(doc: dict[str, Any], key: str, allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise _fail(f"{key}: must be a table")
    if allowed is not None:
        for name in value:
            if name not in allowed:
                raise _fail(f"{key}.{printable(name)}: unknown key (known: {', '.join(allowed)})")
    return value


def _string_list(value: object, where: str, pattern: re.Pattern[str] | None = None) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(f"{where}: must be a list of strings")
    for item in value:
        if pattern is not None and not pattern.fullmatch(item):
            raise _fail(f"{where}: {item!r} must be {_describe(pattern)}")
    if len(set(value)) != len(value):
        raise _fail(f"{where}: an entry is listed twice")
    return value


def _describe(pattern: re.Pattern[str]) -> str:
    if pattern is _HEX64:
        return "64 lowercase hex characters (a sha256 digest)"
    return "32 lowercase hex characters (a key id)"


def _parse_document(doc: object, source: str) -> TrustState:
    if not isinstance(doc, dict):
        raise _fail("the trust state must be a table / JSON object")
    for key in doc:
        if key not in _TOP_KEYS:
            raise _fail(f"{printable(key)}: unknown key (known: {', '.join(_TOP_KEYS)})")
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _fail(f"version: must be an integer >= 1, got {version!r}")
    try:
        expires = parse_time(doc.get("expires"))  # type: ignore[arg-type]
    except DecodeError as exc:
        raise _fail(f"expires: {exc}") from None

    anchors = _anchors(doc.get("anchors", []))
    thresholds = _thresholds(_table(doc, "thresholds", KINDS), anchors)
    revoked = _table(doc, "revoked", ("keys", "digests", "plugins"))
    plugins = _string_list(revoked.get("plugins", []), "revoked.plugins")
    for item in plugins:
        _check_plugin_ref(item)
    floors = {}
    for plugin_id, floor in _table(doc, "floors").items():
        check_plugin_id(plugin_id)
        try:
            SemVer.parse(floor)
        except ValueError as exc:
            raise _fail(f"floors.{plugin_id}: {exc}") from None
        floors[plugin_id] = floor
    pins = {}
    for plugin_id, digest in _table(doc, "pins").items():
        check_plugin_id(plugin_id)
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise _fail(f"pins.{plugin_id}: must be the bundle digest, 64 lowercase hex")
        pins[plugin_id] = digest
    allow = _string_list(
        _table(doc, "capabilities", ("allow",)).get("allow", []), "capabilities.allow"
    )
    for name in allow:
        check_capability_name(name, "capabilities.allow")
    return TrustState(
        anchors=MappingProxyType(anchors),
        thresholds=MappingProxyType(thresholds),
        revoked_keys=frozenset(_string_list(revoked.get("keys", []), "revoked.keys", _HEX32)),
        revoked_digests=frozenset(
            _string_list(revoked.get("digests", []), "revoked.digests", _HEX64)
        ),
        revoked_plugins=frozenset(plugins),
        floors=MappingProxyType(floors),
        pins=MappingProxyType(pins),
        allowed_capabilities=frozenset(allow),
        version=version,
        expires=expires,
        roots=_roots(doc["roots"]) if "roots" in doc else None,
        source=source,
    )


def _anchors(value: object) -> dict[str, Anchor]:
    if not isinstance(value, list):
        raise _fail("anchors: must be a list of tables ([[anchors]])")
    table: dict[str, Anchor] = {}
    for index, item in enumerate(value):
        anchor = parse_anchor(item, f"anchors[{index}]")
        if anchor.keyid in table:
            raise _fail(f"anchors[{index}]: key {anchor.keyid} is already listed")
        table[anchor.keyid] = anchor
    return table


def _thresholds(value: dict[str, Any], anchors: dict[str, Anchor]) -> dict[str, int]:
    result = {}
    for kind, count in value.items():
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 16:
            raise _fail(f"thresholds.{kind}: must be an integer from 1 to 16")
        able = sum(1 for a in anchors.values() if a.may_sign(kind))
        if count > able:
            raise _fail(
                f"thresholds.{kind}: needs {count} signatures but only {able} anchor(s) may "
                f"sign {kind} plugins; add anchors or lower the threshold"
            )
        result[kind] = count
    return result


def _check_plugin_ref(item: str) -> None:
    plugin_id, at, version = item.partition("@")
    try:
        check_plugin_id(plugin_id)
        SemVer.parse(version)
    except (ManifestError, ValueError):
        raise _fail(f"revoked.plugins: {item!r} must be 'plugin-id@version'") from None
    if not at:
        raise _fail(f"revoked.plugins: {item!r} must be 'plugin-id@version'")


def _roots(value: object) -> Roots:
    if not isinstance(value, dict) or set(value) - {"threshold", "keys"}:
        raise _fail("roots: must be a table with threshold and keys")
    keys = value.get("keys")
    if not isinstance(keys, list) or not keys:
        raise _fail("roots.keys: must list at least one root key")
    anchors = [parse_anchor(k, f"roots.keys[{i}]") for i, k in enumerate(keys)]
    if len({a.keyid for a in anchors}) != len(anchors):
        raise _fail("roots.keys: a key is listed twice")
    threshold = value.get("threshold", 1)
    if isinstance(threshold, bool) or not isinstance(threshold, int):
        raise _fail("roots.threshold: must be an integer")
    if not 1 <= threshold <= len(anchors):
        raise _fail(f"roots.threshold: must be between 1 and {len(anchors)} (the number of keys)")
    return Roots(threshold, tuple(anchors))


# --- loading -------------------------------------------------------------------------------


def load_trust(path: str | os.PathLike[str], *, now: datetime) -> TrustState:
    """Load ``--trust PATH``: a ``.pub`` anchor, a directory of them, or a state document.

    A state that declares roots must be the signed envelope; an expired state is refused.
    """
    if not str(path):
        # Path("") is ".": an unset $TRUST in CI would silently trust ./*.pub.
        raise _fail("the trust path is empty; give a .pub file, a directory or a trust state")
    target = Path(path)
    if target.is_dir():
        return _load_anchor_dir(target)
    if target.suffix == ".pub":
        try:
            return TrustState.from_anchors([load_anchor(target)], str(target))
        except KeyFileError as exc:
            raise _fail(str(exc)) from None
    state = read_state(target)
    if state.roots is not None and not state.signed_by:
        raise _fail(
            f"{target}: declares [roots] but is not signed; load the signed file "
            "written by `haechi trust sign`"
        )
    if state.expires is not None and state.expires <= now:
        raise _fail(
            f"{target}: expired at {format_time(state.expires)}; ask the operator for a "
            "fresh trust state (edit it: later expires, higher version; then sign it again)",
            StateCode.EXPIRED,
        )
    return state


def _load_anchor_dir(directory: Path) -> TrustState:
    anchors = []
    for entry in sorted(directory.iterdir()):
        # Only *.pub files are anchors; keygen's NAME.key beside them is never read.
        if entry.suffix == ".pub":
            try:
                anchors.append(load_anchor(entry))
            except KeyFileError as exc:
                raise _fail(str(exc)) from None
    if not anchors:
        raise _fail(f"{directory}: holds no .pub anchor files")
    return TrustState.from_anchors(anchors, str(directory))


def read_state(path: Path) -> TrustState:
    """Parse a state file (TOML, JSON, or a signed envelope) without the expiry check."""
    data = read_state_bytes(path)
    if b"PRIVATE KEY" in data:
        raise _fail(
            f"{path}: this is a private key, not a trust anchor or state; pass the matching "
            ".pub file and keep the .key file secret"
        )
    if not _is_json(data):
        try:
            doc = load_toml(data)
        except DecodeError as exc:
            raise _fail(f"{path}: {exc}") from None
        return TrustState.from_document(doc, str(path))
    try:
        doc = strict_json_loads(data)
    except DecodeError as exc:
        raise _fail(f"{path}: {exc}") from None
    if isinstance(doc, dict) and "payloadType" in doc:
        return _read_signed(data, path)
    return TrustState.from_document(doc, str(path))


def read_state_bytes(path: Path) -> bytes:
    try:
        data, _mode = read_regular(path, limit=MAX_STATE_BYTES, what="trust state")
    except FileReadError as exc:
        raise _fail(str(exc)) from None
    return data


def _is_json(data: bytes) -> bool:
    return data.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"{"


def is_signed_state(data: bytes) -> bool:
    """True for a signed envelope, False for a TOML or JSON draft."""
    if not _is_json(data):
        return False
    try:
        doc = strict_json_loads(data)
    except DecodeError:
        return False
    return isinstance(doc, dict) and "payloadType" in doc


def _open_signed(data: bytes, path: Path) -> tuple[Envelope, TrustState]:
    """Parse a signed state's envelope and payload, without checking signatures."""
    envelope = read_state_envelope(data, path)
    try:
        doc = strict_json_loads(envelope.payload, allow_final_newline=False)
    except DecodeError as exc:
        raise _fail(f"{path}: signed payload: {exc}") from None
    return envelope, TrustState.from_document(doc, str(path))


def _read_signed(data: bytes, path: Path) -> TrustState:
    envelope, state = _open_signed(data, path)
    if state.roots is None:
        raise _fail(f"{path}: a signed trust state must declare [roots]")
    if canonical_json(state.to_document()) != envelope.payload:
        raise _fail(f"{path}: signed payload is not in canonical form")
    valid = state.roots.count_valid(envelope)
    if len(valid) < state.roots.threshold:
        raise _fail(
            f"{path}: signed by {len(valid)} of the {state.roots.threshold} root keys required; "
            "collect more signatures with `haechi trust sign`"
        )
    return replace(state, signed_by=valid)


def read_state_envelope(data: bytes, path: Path) -> Envelope:
    try:
        return Envelope.from_json(data, TRUST_PAYLOAD_TYPE)
    except EnvelopeError as exc:
        raise _fail(f"{path}: {exc}") from None


def sign_state(path: Path, key: SigningKey, previous: TrustState | None = None) -> Envelope:
    """Sign a draft (TOML/JSON) or add a signature to an already signed state.

    ``key`` must be one of the state's roots, or, when rotating roots, one of ``previous``'s
    (an update needs a threshold of both, see :func:`check_update`).
    """
    data = read_state_bytes(path)
    if is_signed_state(data):
        envelope, state = _open_signed(data, path)
    else:
        state = read_state(path)
        envelope = Envelope(TRUST_PAYLOAD_TYPE, canonical_json(state.to_document()), ())
    if state.roots is None:
        raise _fail(f"{path}: declare [roots] (the keys that sign this state) before signing")
    allowed = {a.keyid for a in state.roots.anchors}
    if previous is not None and previous.roots is not None:
        allowed |= {a.keyid for a in previous.roots.anchors}
    if key.keyid not in allowed:
        raise _fail(
            f"key {key.keyid} is not among roots.keys of {path}"
            + (" or of the previous state" if previous is not None else "")
            + "; its signature would not count (rotating roots? pass --previous OLD)"
        )
    try:
        return envelope.add_signature(key)
    except EnvelopeError as exc:
        raise _fail(f"{path}: {exc}") from None


def check_update(previous: TrustState, candidate: TrustState, envelope: Envelope | None) -> None:
    """Refuse a candidate state that is older, or not endorsed by the previous roots.

    ``envelope`` is the candidate's signed envelope, or None for an unsigned draft (which only
    a state without roots may be followed by).
    """
    if previous.version is not None and (candidate.version or 0) <= previous.version:
        raise _fail(
            f"version {candidate.version} is not newer than the current version "
            f"{previous.version}; an update must raise version",
            StateCode.ROLLBACK,
        )
    if previous.roots is not None:
        if envelope is None:
            raise _fail("the current state has roots, so a new state must be signed by them")
        endorsed = previous.roots.count_valid(envelope)
        if len(endorsed) < previous.roots.threshold:
            raise _fail(
                f"signed by {len(endorsed)} of the current roots, which need "
                f"{previous.roots.threshold}; a new state must also be signed by the current "
                "roots (trust sign --previous)"
            )
