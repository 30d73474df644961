"""haechi.trust: keys, signed plugin bundles, trust state and verification.

This package decides whether a plugin may run. It depends on nothing else in haechi.

Example: sign a bundle and verify it against its author's anchor::

    from datetime import datetime, timezone
    from haechi.trust import SigningKey, TrustState, sign_bundle, verify_directory

    key = SigningKey.generate()
    sign_bundle("hello-filter", key)                       # writes hello-filter/plugin.sig
    state = TrustState.from_anchors([key.anchor()]).with_capabilities(["request:body-text"])
    verdict = verify_directory("hello-filter", state, host_version="0.1.0",
                               now=datetime.now(timezone.utc))
    assert verdict.accepted, verdict.message

The rules, in check order, are in :mod:`haechi.trust.verify`; file formats in
``docs/authors/signing.md`` and ``docs/reference/verdict.md``.
"""

from __future__ import annotations

from .bundle import Bundle, Statement, read_bundle
from .envelope import PLUGIN_PAYLOAD_TYPE, TRUST_PAYLOAD_TYPE, Envelope, Signature
from .errors import (
    BundleError,
    EnvelopeError,
    KeyFileError,
    ManifestError,
    TrustError,
    TrustStateError,
)
from .keys import KINDS, Anchor, SigningKey, load_anchor
from .manifest import Limits, Manifest
from .signing import countersign_bundle, sign_bundle
from .state import TrustState, check_update, load_trust
from .verify import (
    Check,
    PluginInfo,
    Reason,
    Verdict,
    verify_bundle,
    verify_directory,
    verify_files,
)

__all__ = [
    "KINDS",
    "PLUGIN_PAYLOAD_TYPE",
    "TRUST_PAYLOAD_TYPE",
    "Anchor",
    "Bundle",
    "BundleError",
    "Check",
    "Envelope",
    "EnvelopeError",
    "KeyFileError",
    "Limits",
    "Manifest",
    "ManifestError",
    "PluginInfo",
    "Reason",
    "Signature",
    "SigningKey",
    "Statement",
    "TrustError",
    "TrustState",
    "TrustStateError",
    "Verdict",
    "check_update",
    "countersign_bundle",
    "load_anchor",
    "load_trust",
    "read_bundle",
    "sign_bundle",
    "verify_bundle",
    "verify_directory",
    "verify_files",
]
