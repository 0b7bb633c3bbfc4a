"""Paths of the real Particle files in ``shared/fixtures/particle`` (beside the repository)."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "particle"
BINARIES = FIXTURES / "binaries"
BUNDLES = FIXTURES / "bundles"
ASSETS = FIXTURES / "assets"


def binary(name: str) -> bytes:
    """Bytes of ``binaries/<name>``."""
    return (BINARIES / name).read_bytes()
