"""The relay fixtures (a server on 127.0.0.1 and a relay token) for the relay e2e tests."""

from __future__ import annotations

from tests.relay.conftest import api, server, settings, token

__all__ = ["api", "server", "settings", "token"]
