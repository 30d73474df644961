"""One exception hierarchy for everything :mod:`haechi.trust` refuses.

Each message says what is wrong and what to do about it, because the person reading it is a
plugin author or an operator at a terminal or in a CI log, not the author of this module.
Verification itself never raises these: it returns a :class:`~haechi.trust.verify.Verdict`.
"""

from __future__ import annotations

__all__ = [
    "BundleError",
    "EnvelopeError",
    "KeyFileError",
    "ManifestError",
    "TrustError",
    "TrustStateError",
]


class TrustError(Exception):
    """Base class of every refusal raised by :mod:`haechi.trust`."""


class ManifestError(TrustError):
    """``plugin.toml`` breaks the schema. ``field`` names the offending key (dotted)."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"plugin.toml: {field}: {problem}" if field else f"plugin.toml: {problem}")


class BundleError(TrustError):
    """The bundle directory cannot be read as a plugin (bad path, symlink, size...)."""


class EnvelopeError(TrustError):
    """``plugin.sig`` (or a signed trust state) is not a well-formed envelope."""


class KeyFileError(TrustError):
    """A key or anchor file is unusable (wrong format, wrong mode, a private key as anchor...)."""


class TrustStateError(TrustError):
    """A trust-state document is malformed, unsigned where it must be signed, expired or older.

    ``code`` is a stable reason: ``trust-state-invalid``, ``trust-state-expired`` or
    ``trust-state-rollback``.
    """

    def __init__(self, message: str, code: str = "trust-state-invalid") -> None:
        self.code = code
        super().__init__(message)
