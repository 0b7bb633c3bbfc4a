"""Fixtures: a bootstrapped server (SQLite) served on 127.0.0.1, a relay token for site north."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bluemule.server.config import Settings
from tests.server.conftest import Api, api
from tests.server.test_relay_api import add_relay
from tests.support.live_server import LiveServer, live_server

__all__ = ["api"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A fresh SQLite data directory (the relay's behaviour does not depend on the database)."""
    return Settings(data_dir=tmp_path / "data", webhook_worker=False)


@pytest.fixture
def server(api: Api) -> Iterator[LiveServer]:
    """The bootstrapped server's app, on 127.0.0.1."""
    with live_server(api.app) as running:
        yield running


@pytest.fixture
def token(api: Api) -> str:
    """A relay token for site ``north``."""
    return add_relay(api, "gw", "north")
