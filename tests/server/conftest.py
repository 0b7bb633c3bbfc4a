"""Fixtures: a bootstrapped server per test, on SQLite and on PostgreSQL.

PostgreSQL comes from ``BLUEMULE_TEST_DATABASE_URL``: each test session creates a fresh
database (dropped afterwards) and each test a fresh schema in it. Without the variable the
PostgreSQL runs are skipped locally and fail in CI (``CI`` set).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from bluemule.server.app import ServerState, create_app
from bluemule.server.config import Settings
from bluemule.server.db import normalize_url
from bluemule.server.files import bootstrap
from bluemule.server.models import Base


def _autocommit(url: str) -> Any:
    return create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """``None`` for SQLite, else the URL of a fresh PostgreSQL database for this session."""
    if request.param == "sqlite":
        yield None
        return
    base = os.environ.get("BLUEMULE_TEST_DATABASE_URL")
    if not base:
        if os.environ.get("CI"):
            pytest.fail("BLUEMULE_TEST_DATABASE_URL is not set in CI")
        pytest.skip("BLUEMULE_TEST_DATABASE_URL is not set")
    name = f"bluemule_test_{secrets.token_hex(6)}"
    admin = _autocommit(base)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(normalize_url(base)).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def settings(database: str | None, tmp_path: Path) -> Iterator[Settings]:
    """Settings of a data directory that does not exist yet, with an empty database."""
    data_dir = tmp_path / "data"
    if database is None:
        yield Settings(data_dir=data_dir)
        return
    schema = f"t_{secrets.token_hex(6)}"
    engine = _autocommit(database)
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(database).update_query_dict({"options": f"-csearch_path={schema}"})
        yield Settings(data_dir=data_dir, database_url=url.render_as_string(hide_password=False))
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        engine.dispose()


class Api:
    """A synchronous client of an app, in-process (``httpx.ASGITransport``)."""

    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.token = settings.admin_token_path.read_text().strip()
        state = app.state.bluemule
        assert isinstance(state, ServerState)
        self.state = state

    def request(
        self, method: str, path: str, *, auth: bool = True, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if auth:
            headers.setdefault("Authorization", f"Bearer {self.token}")

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(method, path, headers=headers, **kwargs)

        return asyncio.run(go())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def upload(self, data: bytes, filename: str, **kwargs: Any) -> httpx.Response:
        return self.post(
            "/api/admin/v1/releases",
            content=data,
            params={"filename": filename, **kwargs},
            headers={"Content-Type": "application/octet-stream"},
        )

    def counts(self) -> dict[str, int]:
        """Rows per table, and blob files on disk."""
        with self.state.sessions() as session:
            out = {
                table.name: session.scalar(select(func.count()).select_from(table)) or 0
                for table in Base.metadata.sorted_tables
            }
        out["blob files"] = sum(1 for p in self.settings.blob_dir.rglob("*") if p.is_file())
        return out


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    """A bootstrapped server."""
    bootstrap(settings)
    app = create_app(settings)
    try:
        yield Api(app, settings)
    finally:
        app.state.bluemule.engine.dispose()


def assert_problem(response: httpx.Response, status: int, text: str = "") -> dict[str, Any]:
    """The response is an RFC 9457 problem with ``status`` whose detail mentions ``text``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["type"] == "about:blank"
    assert text in body["detail"], body
    return body
