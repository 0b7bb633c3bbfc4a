"""Shared paths for the image tests.

CI clones the repository with ``shared/`` beside it (``<parent>/main`` and
``<parent>/shared``), so the real Particle files live at ``<repo>/../shared/fixtures/particle``.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT.parent / "shared" / "fixtures" / "particle"
