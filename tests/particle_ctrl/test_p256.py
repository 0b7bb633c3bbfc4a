"""P-256 arithmetic against OpenSSL (through ``cryptography``): k·G, k·Q via ECDH, sums."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from bluemule.particle_ctrl import p256

scalars = st.integers(min_value=1, max_value=p256.N - 1)
EDGE_SCALARS = [1, 2, 3, 15, 16, 17, 2**128, 2**255, p256.N - 2, p256.N - 1]


def openssl_public(k: int) -> p256.Point:
    numbers = ec.derive_private_key(k, ec.SECP256R1()).public_key().public_numbers()
    return p256.Point(numbers.x, numbers.y)


def expected(k: int) -> p256.Point | None:
    """k·G by OpenSSL, or None (infinity) when k is a multiple of n."""
    k %= p256.N
    return openssl_public(k) if k else None


def openssl_shared_x(k: int, point: p256.Point) -> int:
    """x of k·point, computed by OpenSSL's ECDH."""
    public = ec.EllipticCurvePublicNumbers(point.x, point.y, ec.SECP256R1()).public_key()
    shared = ec.derive_private_key(k, ec.SECP256R1()).exchange(ec.ECDH(), public)
    return int.from_bytes(shared, "big")


def test_base_point_and_constants() -> None:
    assert p256.is_on_curve(p256.GX, p256.GY)
    assert openssl_public(1) == p256.G
    assert p256.multiply_generator(p256.N) is None
    assert p256.multiply(p256.N, p256.multiply_generator(7)) is None
    assert p256.multiply_generator(0) is None


@pytest.mark.parametrize("k", EDGE_SCALARS)
def test_edge_scalars_times_g(k: int) -> None:
    assert p256.multiply_generator(k) == openssl_public(k)
    assert p256.multiply(k, p256.G) == openssl_public(k)


@settings(max_examples=40, deadline=None)
@given(scalars)
def test_generator_multiplication_matches_openssl(k: int) -> None:
    assert p256.multiply_generator(k) == openssl_public(k)


@settings(max_examples=40, deadline=None)
@given(scalars, scalars)
def test_point_multiplication_matches_openssl_ecdh(k: int, q: int) -> None:
    point = openssl_public(q)
    product = p256.multiply(k, point)
    assert product is not None
    assert product.x == openssl_shared_x(k, point)
    assert product == openssl_public(k * q % p256.N)


@settings(max_examples=30, deadline=None)
@given(scalars, scalars, scalars)
def test_sums_and_multiply_add(a: int, b: int, q: int) -> None:
    pa, pb = openssl_public(a), openssl_public(b)
    assert p256.add(pa, pb) == expected(a + b)
    assert p256.add(pa, pa) == expected(2 * a)
    assert p256.add(pa, p256.negate(pa)) is None
    assert p256.add(None, pa) == pa
    assert p256.add(pa, None) == pa
    point = openssl_public(q)
    assert p256.multiply_add(a, point, b, p256.G) == expected(a * q + b)
    assert p256.multiply_add(a, None, b, point) == expected(b * q)


def test_sums_reaching_infinity() -> None:
    assert p256.multiply_add(1, openssl_public(p256.N - 1), 1, p256.G) is None
    assert p256.add(openssl_public(p256.N - 1), p256.G) is None


def test_is_on_curve_refuses_out_of_range_and_off_curve() -> None:
    assert not p256.is_on_curve(p256.GX, p256.GY + 1)
    assert not p256.is_on_curve(p256.GX + p256.P, p256.GY)  # same residue, not reduced
    assert not p256.is_on_curve(p256.GX, p256.GY + p256.P)
    assert not p256.is_on_curve(-1, p256.GY)
    assert p256.is_on_curve(p256.GX, p256.P - p256.GY)  # -G


def test_encoding_is_sec1_uncompressed() -> None:
    raw = p256.G.encode()
    assert len(raw) == 65
    assert raw[0] == 4
    assert int.from_bytes(raw[1:33], "big") == p256.GX
    assert int.from_bytes(raw[33:], "big") == p256.GY
