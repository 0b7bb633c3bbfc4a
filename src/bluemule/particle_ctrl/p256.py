"""NIST P-256 (secp256r1) point arithmetic in pure Python, for EC-JPAKE.

Affine points are :class:`Point` values; ``None`` stands for the point at infinity.
Internally the arithmetic runs in Jacobian coordinates (``X/Z², Y/Z³``), so a scalar
multiplication costs one modular inversion at the end. Multiplication uses a fixed
4-bit window; multiples of the base point use a precomputed table of ``j·16^i·G``
(no doublings at all).

Not constant time. Timing depends on the scalar, so a local observer who can time many
multiplications with the same secret could learn about it. bluemule runs EC-JPAKE on
the phone or gateway with fresh random scalars for every handshake, against a peer
(the device) that cannot measure the phone's CPU; the mobile secret itself only enters
as a multiplier of a fresh scalar. That is the exposure model this module accepts; it is
not suitable for long-lived keys on a shared host.

Constants are those of SEC 2 v2 §2.4.2 / FIPS 186-4 D.1.2.3.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
"""The field prime."""
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
"""The order of the base point (the group is cyclic of prime order, cofactor 1)."""
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
"""The curve is ``y² = x³ - 3x + b``."""
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5

COORDINATE_SIZE = 32
"""Bytes of one field element or scalar, big-endian."""


class Point(NamedTuple):
    """An affine point ``(x, y)`` of P-256 (never the point at infinity)."""

    x: int
    y: int

    def encode(self) -> bytes:
        """SEC 1 uncompressed encoding: ``04 ‖ x ‖ y``, 65 bytes."""
        return (
            b"\x04"
            + self.x.to_bytes(COORDINATE_SIZE, "big")
            + self.y.to_bytes(COORDINATE_SIZE, "big")
        )


G = Point(GX, GY)
"""The base point."""

_Jacobian = tuple[int, int, int]
_INFINITY: _Jacobian = (1, 1, 0)


def is_on_curve(x: int, y: int) -> bool:
    """Whether ``0 <= x, y < p`` and ``(x, y)`` satisfies the curve equation."""
    if not (0 <= x < P and 0 <= y < P):
        return False
    return (y * y - (x * x * x - 3 * x + B)) % P == 0


def _double(p: _Jacobian) -> _Jacobian:
    """2·p (dbl-2001-b, for a = -3)."""
    x, y, z = p
    if z == 0 or y == 0:
        return _INFINITY
    delta = z * z % P
    gamma = y * y % P
    beta = x * gamma % P
    alpha = 3 * (x - delta) * (x + delta) % P
    x3 = (alpha * alpha - 8 * beta) % P
    z3 = ((y + z) * (y + z) - gamma - delta) % P
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % P
    return x3, y3, z3


def _add(p: _Jacobian, q: _Jacobian) -> _Jacobian:
    """p + q for any two Jacobian points, infinity and equal points included."""
    x1, y1, z1 = p
    x2, y2, z2 = q
    if z1 == 0:
        return q
    if z2 == 0:
        return p
    z1z1 = z1 * z1 % P
    z2z2 = z2 * z2 % P
    u1 = x1 * z2z2 % P
    u2 = x2 * z1z1 % P
    s1 = y1 * z2 * z2z2 % P
    s2 = y2 * z1 * z1z1 % P
    h = (u2 - u1) % P
    r = (s2 - s1) % P
    if h == 0:
        return _double(p) if r == 0 else _INFINITY
    hh = h * h % P
    hhh = h * hh % P
    v = u1 * hh % P
    x3 = (r * r - hhh - 2 * v) % P
    y3 = (r * (v - x3) - s1 * hhh) % P
    z3 = z1 * z2 * h % P
    return x3, y3, z3


def _to_jacobian(point: Point | None) -> _Jacobian:
    return _INFINITY if point is None else (point.x, point.y, 1)


def _to_affine(p: _Jacobian) -> Point | None:
    x, y, z = p
    if z == 0:
        return None
    z_inv = pow(z, -1, P)
    z_inv2 = z_inv * z_inv % P
    return Point(x * z_inv2 % P, y * z_inv2 * z_inv % P)


def add(p: Point | None, q: Point | None) -> Point | None:
    """The sum of two points (``None`` = infinity)."""
    return _to_affine(_add(_to_jacobian(p), _to_jacobian(q)))


def negate(p: Point | None) -> Point | None:
    """-p."""
    return None if p is None else Point(p.x, (P - p.y) % P)


def _multiply_jacobian(k: int, point: Point) -> _Jacobian:
    k %= N
    if k == 0:
        return _INFINITY
    table = [_INFINITY, (point.x, point.y, 1)]
    for _ in range(14):
        table.append(_add(table[-1], table[1]))
    acc = _INFINITY
    for shift in range((k.bit_length() + 3) // 4 * 4 - 4, -4, -4):
        acc = _double(_double(_double(_double(acc))))
        digit = (k >> shift) & 0xF
        if digit:
            acc = _add(acc, table[digit])
    return acc


@functools.cache
def _generator_table() -> tuple[tuple[_Jacobian, ...], ...]:
    """``table[i][j] = j·16^i·G`` for the 64 base-16 digits of a scalar."""
    rows: list[tuple[_Jacobian, ...]] = []
    base: _Jacobian = (GX, GY, 1)
    for _ in range(64):
        row = [_INFINITY, base]
        for _ in range(14):
            row.append(_add(row[-1], base))
        affine = [_to_affine(p) for p in row]
        rows.append(tuple(_to_jacobian(p) for p in affine))
        base = _double(_double(_double(_double(base))))
    return tuple(rows)


def multiply(k: int, point: Point | None) -> Point | None:
    """k·point (k taken modulo n; ``None`` when the product is infinity)."""
    if point is None:
        return None
    if point == G:
        return multiply_generator(k)
    return _to_affine(_multiply_jacobian(k, point))


def multiply_generator(k: int) -> Point | None:
    """k·G through the precomputed table (k taken modulo n)."""
    k %= N
    acc = _INFINITY
    for row in _generator_table():
        if not k:
            break
        digit = k & 0xF
        if digit:
            acc = _add(acc, row[digit])
        k >>= 4
    return _to_affine(acc)


def multiply_add(a: int, p: Point | None, b: int, q: Point | None) -> Point | None:
    """a·p + b·q with a single inversion at the end."""
    terms: list[_Jacobian] = []
    for k, point in ((a, p), (b, q)):
        if point is None:
            continue
        if point == G:
            generated = multiply_generator(k)
            terms.append(_to_jacobian(generated))
        else:
            terms.append(_multiply_jacobian(k, point))
    acc = _INFINITY
    for term in terms:
        acc = _add(acc, term)
    return _to_affine(acc)
