"""RS256: RSASSA-PKCS1-v1_5 signature verification with SHA-256 (RFC 8017 §8.2.2), pure Python.

The recovered block is compared whole against the one encoding the signature may have
(EMSA-PKCS1-v1_5, RFC 8017 §9.2). Parsing the block instead (skip the 0xFF run, read the
DigestInfo, compare the hash) is what Bleichenbacher's 2006 forgery exploits when a parser
accepts short padding or ignores trailing bytes; building the expected block leaves nothing to
parse.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["MAX_BITS", "MIN_BITS", "check_public_key", "verify"]

MIN_BITS = 2048  # RFC 7518 §3.3: keys of 2048 bits or more
MAX_BITS = 8192  # bounds the cost of one verification an attacker can ask for
MAX_EXPONENT_BITS = 32  # real exponents are 65537; a huge one would be a cheap DoS

# DER of DigestInfo { AlgorithmIdentifier { id-sha256, NULL }, OCTET STRING (32 bytes) }, the
# prefix RFC 8017 §9.2 note 1 lists for SHA-256.
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def check_public_key(n: int, e: int) -> str | None:
    """Why (n, e) is not an acceptable RS256 verification key, or None."""
    if not MIN_BITS <= n.bit_length() <= MAX_BITS:
        return f"the modulus must have {MIN_BITS}-{MAX_BITS} bits, not {n.bit_length()}"
    if n % 2 == 0:
        return "the modulus is even"
    if e < 3 or e % 2 == 0 or e.bit_length() > MAX_EXPONENT_BITS:
        return "the exponent must be odd, at least 3 and at most 32 bits"
    return None


def _expected_block(message: bytes, size: int) -> bytes | None:
    """EM = 0x00 || 0x01 || PS (0xFF...) || 0x00 || DigestInfo || SHA-256(message)."""
    tail = SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    padding = size - len(tail) - 3
    if padding < 8:  # RFC 8017 §9.2 step 3: "intended encoded message length too short"
        return None
    return b"\x00\x01" + b"\xff" * padding + b"\x00" + tail


def verify(n: int, e: int, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid RS256 signature of ``message`` under (n, e)."""
    size = (n.bit_length() + 7) // 8
    if len(signature) != size:  # §8.2.2 step 1: exactly the modulus length
        return False
    s = int.from_bytes(signature, "big")
    if s >= n:  # §5.2.2 step 1: the representative must be below the modulus
        return False
    recovered = pow(s, e, n).to_bytes(size, "big")
    expected = _expected_block(message, size)
    return expected is not None and hmac.compare_digest(recovered, expected)
