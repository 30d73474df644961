"""Verification: one pure function from (bundle, envelope, trust state, host version, now)
to a :class:`Verdict`.

The checks of DESIGN §2 run in this fixed order and stop at the first failure; each failure
has a stable reason code that CI pipelines may match on:

1. ``bundle-invalid`` - the files form a valid bundle with a valid manifest;
2. ``envelope-invalid`` - ``plugin.sig`` is a strict envelope holding a strict statement;
3. ``unknown-signer`` - at least one signature names a trusted anchor (no crypto before this);
4. ``signer-revoked`` - no signature comes from a revoked key;
5. ``bad-signature`` - every signature by a trusted anchor verifies;
6. ``tampered`` - the files and manifest are exactly those the statement names;
7. ``not-yet-valid`` / ``expired`` - ``now`` is inside ``[notBefore, notAfter)``;
8. ``plugin-revoked`` - neither the bundle digest nor ``id@version`` is revoked;
9. ``below-version-floor`` - the version is not below the floor for the plugin id;
10. ``pin-mismatch`` - a pin for the plugin id, if any, equals the bundle digest;
11. ``kind-not-allowed`` - enough distinct anchors allowed to sign this kind have signed;
12. ``capability-not-allowed`` - every declared capability is on the operator allowlist;
13. ``host-version-unsupported`` - the host version satisfies ``requires-host``.

Example::

    >>> from datetime import datetime, timezone
    >>> verdict = verify_directory("my-plugin", load_trust("anchors/", now=NOW),
    ...                            host_version="0.1.0", now=NOW)  # doctest: +SKIP
    >>> verdict.accepted, verdict.reason  # doctest: +SKIP
    (True, <Reason.ACCEPTED: 'accepted'>)
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from ._internal.encoding import format_time
from ._internal.semver import SemVer
from .bundle import SIGNATURE_FILE, Bundle, Statement, read_bundle
from .envelope import PLUGIN_PAYLOAD_TYPE, Envelope
from .errors import BundleError, EnvelopeError, ManifestError
from .state import TrustState

__all__ = [
    "Check",
    "PluginInfo",
    "Reason",
    "Verdict",
    "verify_bundle",
    "verify_directory",
    "verify_files",
]


class Reason(StrEnum):
    """Stable reason codes, in check order (DESIGN §2)."""

    ACCEPTED = "accepted"
    BUNDLE_INVALID = "bundle-invalid"
    ENVELOPE_INVALID = "envelope-invalid"
    UNKNOWN_SIGNER = "unknown-signer"
    SIGNER_REVOKED = "signer-revoked"
    BAD_SIGNATURE = "bad-signature"
    TAMPERED = "tampered"
    NOT_YET_VALID = "not-yet-valid"
    EXPIRED = "expired"
    PLUGIN_REVOKED = "plugin-revoked"
    BELOW_VERSION_FLOOR = "below-version-floor"
    PIN_MISMATCH = "pin-mismatch"
    KIND_NOT_ALLOWED = "kind-not-allowed"
    CAPABILITY_NOT_ALLOWED = "capability-not-allowed"
    HOST_VERSION_UNSUPPORTED = "host-version-unsupported"

    @property
    def exit_code(self) -> int:
        """0 accepted, 10 invalid, 11 untrusted, 12 policy, 13 capability not allowed."""
        return _EXIT_CODES[self]

    @property
    def hint(self) -> str:
        """What the reader should do about it."""
        return _HINTS[self]


_EXIT_CODES = {
    Reason.ACCEPTED: 0,
    Reason.BUNDLE_INVALID: 10,
    Reason.ENVELOPE_INVALID: 10,
    Reason.UNKNOWN_SIGNER: 11,
    Reason.SIGNER_REVOKED: 11,
    Reason.BAD_SIGNATURE: 11,
    Reason.TAMPERED: 11,
    Reason.KIND_NOT_ALLOWED: 11,
    Reason.NOT_YET_VALID: 12,
    Reason.EXPIRED: 12,
    Reason.PLUGIN_REVOKED: 12,
    Reason.BELOW_VERSION_FLOOR: 12,
    Reason.PIN_MISMATCH: 12,
    Reason.HOST_VERSION_UNSUPPORTED: 12,
    Reason.CAPABILITY_NOT_ALLOWED: 13,
}

_HINTS = {
    Reason.ACCEPTED: "the plugin may be loaded",
    Reason.BUNDLE_INVALID: "fix the bundle as described, then sign it again",
    Reason.ENVELOPE_INVALID: (
        f"{SIGNATURE_FILE} is missing, damaged or not a haechi envelope; sign the bundle "
        "again with `haechi plugin sign DIR --key KEY`"
    ),
    Reason.UNKNOWN_SIGNER: (
        "no signature is from a trusted key; check that --trust points at the right anchors, "
        "or ask the operator to add the author's .pub anchor"
    ),
    Reason.SIGNER_REVOKED: (
        "a signing key has been revoked; the author must sign with a current key"
    ),
    Reason.BAD_SIGNATURE: (
        "a signature does not verify: the envelope was altered or signed with another key; "
        "sign the bundle again"
    ),
    Reason.TAMPERED: (
        "the files changed after signing; restore the signed files, or if the change is "
        "intended, sign again with `haechi plugin sign DIR --key KEY`"
    ),
    Reason.NOT_YET_VALID: "the signature is not valid yet; check this machine's clock",
    Reason.EXPIRED: "the signature's validity window has ended; the author must sign again",
    Reason.PLUGIN_REVOKED: "the operator revoked this build; install a newer release",
    Reason.BELOW_VERSION_FLOOR: (
        "this version is older than the operator's floor for it; install a newer release"
    ),
    Reason.PIN_MISMATCH: (
        "the operator pinned a different build of this plugin; install the pinned build or "
        "update the pin in the trust state"
    ),
    Reason.KIND_NOT_ALLOWED: (
        "collect signatures from enough anchors allowed to sign this kind "
        "(`haechi plugin sign DIR --key KEY --countersign`)"
    ),
    Reason.CAPABILITY_NOT_ALLOWED: (
        "if you accept what it grants, allow it with --allow-capability NAME or in the "
        "trust state's [capabilities] allow list"
    ),
    Reason.HOST_VERSION_UNSUPPORTED: (
        "use a plugin release made for this host version, or upgrade haechi"
    ),
}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool


@dataclass(frozen=True)
class PluginInfo:
    id: str
    version: str
    kind: str
    digest: str


@dataclass(frozen=True)
class Verdict:
    """The outcome of verification. ``bundle`` holds the verified bytes when accepted."""

    accepted: bool
    reason: Reason
    message: str
    plugin: PluginInfo | None = None
    signers: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()
    bundle: Bundle | None = field(default=None, repr=False, compare=False)

    @property
    def exit_code(self) -> int:
        return self.reason.exit_code


CHECK_NAMES = (
    "bundle",
    "envelope",
    "signer-known",
    "signer-not-revoked",
    "signatures",
    "integrity",
    "validity-window",
    "plugin-not-revoked",
    "version-floor",
    "pin",
    "kind-and-threshold",
    "capabilities",
    "host-version",
)


class _Run:
    """Collects passed checks so a refusal reports how far verification got."""

    def __init__(self) -> None:
        self.passed: list[Check] = []
        self.plugin: PluginInfo | None = None
        self.signers: tuple[str, ...] = ()

    def ok(self, name: str) -> None:
        self.passed.append(Check(name, True))

    def refuse(self, name: str, reason: Reason, message: str) -> Verdict:
        return Verdict(
            accepted=False,
            reason=reason,
            message=message,
            plugin=self.plugin,
            signers=self.signers,
            checks=(*self.passed, Check(name, False)),
        )


def verify_files(
    files: Mapping[str, bytes],
    envelope: bytes | None,
    state: TrustState,
    *,
    host_version: str,
    now: datetime,
) -> Verdict:
    """Verify an in-memory bundle (``files`` without ``plugin.sig``) and its envelope bytes."""
    try:
        bundle = Bundle.from_files(files, envelope)
    except (BundleError, ManifestError) as exc:
        return _Run().refuse("bundle", Reason.BUNDLE_INVALID, str(exc))
    return verify_bundle(bundle, state, host_version=host_version, now=now)


def verify_directory(
    directory: str | os.PathLike[str],
    state: TrustState,
    *,
    host_version: str,
    now: datetime,
) -> Verdict:
    """Read a bundle directory once and verify it."""
    try:
        bundle = read_bundle(directory)
    except (BundleError, ManifestError) as exc:
        return _Run().refuse("bundle", Reason.BUNDLE_INVALID, str(exc))
    except OSError as exc:
        return _Run().refuse("bundle", Reason.BUNDLE_INVALID, f"{directory}: {exc}")
    return verify_bundle(bundle, state, host_version=host_version, now=now)


def verify_bundle(
    bundle: Bundle, state: TrustState, *, host_version: str, now: datetime
) -> Verdict:
    """Run checks 2-13 on a bundle that passed check 1 (see the module docstring)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    run = _Run()
    manifest = bundle.manifest
    digest = bundle.digest
    run.plugin = PluginInfo(manifest.id, manifest.version, manifest.kind, digest)
    run.ok("bundle")

    # Step 2: a strict envelope around a strict, canonical statement.
    if bundle.signature is None:
        return run.refuse(
            "envelope", Reason.ENVELOPE_INVALID, f"the bundle has no {SIGNATURE_FILE}"
        )
    try:
        envelope = Envelope.from_json(bundle.signature, PLUGIN_PAYLOAD_TYPE)
        statement = Statement.from_envelope(envelope)
    except EnvelopeError as exc:
        return run.refuse("envelope", Reason.ENVELOPE_INVALID, str(exc))
    run.ok("envelope")

    # Step 3: some signature must name a trusted anchor, decided before any crypto work.
    trusted = [s for s in envelope.signatures if s.keyid in state.anchors]
    if not trusted:
        return run.refuse(
            "signer-known",
            Reason.UNKNOWN_SIGNER,
            f"signed by {', '.join(envelope.keyids)}, none of which is a trusted anchor",
        )
    run.ok("signer-known")

    # Step 4: one revoked signer taints the envelope, even beside valid ones.
    revoked = [k for k in envelope.keyids if k in state.revoked_keys]
    if revoked:
        return run.refuse(
            "signer-not-revoked", Reason.SIGNER_REVOKED, f"signing key {revoked[0]} is revoked"
        )
    run.ok("signer-not-revoked")

    # Step 5: every signature by a trusted anchor must verify over PAE(type, payload).
    message = envelope.signed_message
    for signature in trusted:
        if not state.anchors[signature.keyid].verify(message, signature.sig):
            return run.refuse(
                "signatures",
                Reason.BAD_SIGNATURE,
                f"the signature by {signature.keyid} does not verify",
            )
    run.signers = tuple(dict.fromkeys(s.keyid for s in trusted))
    run.ok("signatures")

    # Step 6: the bytes on disk are exactly the bytes that were signed.
    problem = _integrity_problem(bundle, statement)
    if problem:
        return run.refuse("integrity", Reason.TAMPERED, problem)
    run.ok("integrity")

    # Step 7: inside [notBefore, notAfter).
    if now < statement.not_before:
        return run.refuse(
            "validity-window",
            Reason.NOT_YET_VALID,
            f"valid from {format_time(statement.not_before)}, now is {format_time(now)}",
        )
    if now >= statement.not_after:
        return run.refuse(
            "validity-window",
            Reason.EXPIRED,
            f"expired at {format_time(statement.not_after)}, now is {format_time(now)}",
        )
    run.ok("validity-window")

    # Step 8: revoked builds, by content digest or by id@version.
    if digest in state.revoked_digests:
        return run.refuse(
            "plugin-not-revoked", Reason.PLUGIN_REVOKED, f"digest {digest} is revoked"
        )
    if state.release_revoked(manifest.id, manifest.semver):
        return run.refuse(
            "plugin-not-revoked",
            Reason.PLUGIN_REVOKED,
            f"release {manifest.id}@{manifest.version} is revoked",
        )
    run.ok("plugin-not-revoked")

    # Step 9: rollback protection, by semantic-version precedence.
    floor = state.floors.get(manifest.id)
    if floor is not None and manifest.semver < SemVer.parse(floor):
        return run.refuse(
            "version-floor",
            Reason.BELOW_VERSION_FLOOR,
            f"{manifest.id} {manifest.version} is below the floor {floor}",
        )
    run.ok("version-floor")

    # Step 10: a pin names the one acceptable build.
    pin = state.pins.get(manifest.id)
    if pin is not None and not hmac.compare_digest(pin, digest):
        return run.refuse(
            "pin", Reason.PIN_MISMATCH, f"{manifest.id} is pinned to {pin}, this build is {digest}"
        )
    run.ok("pin")

    # Step 11: distinct anchors allowed to sign this kind, at least the threshold.
    eligible = [k for k in run.signers if state.anchors[k].may_sign(manifest.kind)]
    needed = state.threshold(manifest.kind)
    if len(eligible) < needed:
        return run.refuse(
            "kind-and-threshold",
            Reason.KIND_NOT_ALLOWED,
            _threshold_message(manifest.kind, eligible, needed, run.signers),
        )
    run.ok("kind-and-threshold")

    # Step 12: capabilities fail closed - no allowlist means nothing is allowed.
    missing = [c for c in manifest.capabilities if c not in state.allowed_capabilities]
    if missing:
        return run.refuse(
            "capabilities",
            Reason.CAPABILITY_NOT_ALLOWED,
            f"declares {', '.join(missing)}, not on the operator's capability allowlist",
        )
    run.ok("capabilities")

    # Step 13: the plugin supports this host. Pre-release hosts count (a plain SpecifierSet
    # would refuse every plugin on a 0.2.0rc1 host).
    if not _host_supported(manifest.requires_host, host_version):
        return run.refuse(
            "host-version",
            Reason.HOST_VERSION_UNSUPPORTED,
            f"requires host {manifest.requires_host}, this host is {host_version}",
        )
    run.ok("host-version")

    return Verdict(
        accepted=True,
        reason=Reason.ACCEPTED,
        message=f"{manifest.id} {manifest.version} is signed by a trusted key and meets policy",
        plugin=run.plugin,
        signers=run.signers,
        checks=tuple(run.passed),
        bundle=bundle,
    )


def _integrity_problem(bundle: Bundle, statement: Statement) -> str | None:
    actual = bundle.digests
    added = sorted(set(actual) - set(statement.files))
    if added:
        return f"file {added[0]!r} was added after signing"
    removed = sorted(set(statement.files) - set(actual))
    if removed:
        return f"file {removed[0]!r} was removed after signing"
    for path in sorted(actual):
        if not hmac.compare_digest(actual[path], statement.files[path]):
            return f"file {path!r} differs from the signed digest"
    if statement.manifest != bundle.manifest:
        return "the manifest differs from the signed manifest"
    return None


def _threshold_message(
    kind: str, eligible: list[str], needed: int, signers: tuple[str, ...]
) -> str:
    if not eligible:
        return f"no signer may sign {kind} plugins (signed by {', '.join(signers)})"
    return (
        f"{kind} plugins need {needed} signatures from distinct anchors allowed to sign "
        f"{kind}; found {len(eligible)} ({', '.join(eligible)})"
    )


def _host_supported(requires_host: str, host_version: str) -> bool:
    try:
        version = Version(host_version)
    except InvalidVersion:
        return False
    return SpecifierSet(requires_host).contains(version, prereleases=True)
