"""Ed25519 signature verification (RFC 8032 §5.1), in pure Python.

The sandbox offers only the standard library, so this is the curve arithmetic itself. It only
verifies, so nothing here handles a secret and timing is not a concern; it is slow (a few
milliseconds per signature) but correct. Verification is strict:

* public key and R must be canonical encodings of curve points (y < p, and no "negative zero");
* S must be below the group order L (signature malleability, RFC 8032 §5.1.7 step 1);
* points of small order (the 8 torsion points) are refused as the public key or R, as
  libsodium does: with them a signature can be valid for many messages;
* the check is the cofactorless group equation [S]B = R + [k]A.
"""

from __future__ import annotations

import hashlib

__all__ = ["verify"]

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)  # a square root of -1 mod p

# Points are extended homogeneous coordinates (X, Y, Z, T) with x = X/Z, y = Y/Z, xy = T/Z.
Point = tuple[int, int, int, int]
IDENTITY: Point = (0, 1, 1, 0)


def _add(a: Point, b: Point) -> Point:
    """Complete addition on the twisted Edwards curve (RFC 8032 §5.1.4)."""
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    pa = (y1 - x1) * (y2 - x2) % P
    pb = (y1 + x1) * (y2 + x2) % P
    pc = 2 * t1 * t2 * D % P
    pd = 2 * z1 * z2 % P
    e, f, g, h = pb - pa, pd - pc, pd + pc, pb + pa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _negate(a: Point) -> Point:
    x, y, z, t = a
    return (-x % P, y, z, -t % P)


def _equal(a: Point, b: Point) -> bool:
    """Projective equality: x1/z1 == x2/z2 and y1/z1 == y2/z2."""
    return (a[0] * b[2] - b[0] * a[2]) % P == 0 and (a[1] * b[2] - b[1] * a[2]) % P == 0


def _recover_x(y: int, sign: int) -> int | None:
    """The x of the point with this y and x parity, or None (RFC 8032 §5.1.3 steps 2-4)."""
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if (v * x * x - u) % P != 0:
        if (v * x * x + u) % P != 0:
            return None  # u/v has no square root: not on the curve
        x = x * SQRT_M1 % P
    if x == 0 and sign == 1:
        return None  # "negative zero" is a non-canonical encoding
    return P - x if x & 1 != sign else x


def _decode_point(data: bytes) -> Point | None:
    if len(data) != 32:
        return None
    value = int.from_bytes(data, "little")
    y, sign = value & ((1 << 255) - 1), value >> 255
    if y >= P:
        return None  # non-canonical: y must be reduced mod p
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


def _small_order(a: Point) -> bool:
    """True for the 8 torsion points: [8]A is the identity."""
    for _ in range(3):
        a = _add(a, a)
    return _equal(a, IDENTITY)


def _base_point() -> Point:
    y = 4 * pow(5, P - 2, P) % P
    x = _recover_x(y, 0)
    assert x is not None
    return (x, y, 1, x * y % P)


BASE = _base_point()


def _double_scalar(s: int, a: Point, k: int, b: Point) -> Point:
    """[s]A + [k]B in one double-and-add pass over both scalars (Shamir's trick)."""
    both = _add(a, b)
    result = IDENTITY
    for bit in range(max(s.bit_length(), k.bit_length()) - 1, -1, -1):
        result = _add(result, result)
        pick = ((s >> bit) & 1, (k >> bit) & 1)
        if pick == (1, 1):
            result = _add(result, both)
        elif pick == (1, 0):
            result = _add(result, a)
        elif pick == (0, 1):
            result = _add(result, b)
    return result


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key``."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    a = _decode_point(public_key)
    r = _decode_point(signature[:32])
    if a is None or r is None or _small_order(a) or _small_order(r):
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    digest = hashlib.sha512(signature[:32] + public_key + message).digest()
    k = int.from_bytes(digest, "little") % L
    # [S]B - [k]A must equal R.
    return _equal(_double_scalar(s, BASE, k, _negate(a)), r)
