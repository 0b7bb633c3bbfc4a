"""Shared set-up for the conformance tests against Particle's binary-version-reader.

Every test collected from this folder is marked ``conformance``. The session-scoped
``bvr`` fixture installs the pinned npm package (once per cache, see ``bvr.py``) and
yields a running ``BinaryVersionReader``; without Node.js/npm it errors, so the tests
fail instead of being skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.bvr import BinaryVersionReader, ensure_installed

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
# CI clones the repository with shared/ beside it: <parent>/main and <parent>/shared.
FIXTURES = REPO_ROOT.parent / "shared" / "fixtures" / "particle"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Called with the whole session's items: only mark the ones that live here.
    for item in items:
        if item.path.resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.conformance)


@pytest.fixture(scope="session")
def particle_fixtures() -> Path:
    """The shared directory of real Particle binaries (``FIXTURES``); it must exist."""
    assert FIXTURES.is_dir(), f"shared Particle fixtures not found at {FIXTURES}"
    return FIXTURES


@pytest.fixture(scope="session")
def bvr() -> Iterator[BinaryVersionReader]:
    """A running bridge to binary-version-reader 3.1.3, shared by the whole session."""
    with BinaryVersionReader(ensure_installed()) as client:
        yield client
