"""The application factory: ``create_app(settings)``; all state lives on ``app.state``."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bluemule import __version__
from bluemule.protocol.manifest import SigningKey
from bluemule.server.config import Settings
from bluemule.server.db import make_engine, make_sessionmaker
from bluemule.server.files import BlobStore, SecretBox, read_admin_token, read_signing_key
from bluemule.server.problems import UnauthorizedError, install_handlers
from bluemule.server.revisions import track_revisions
from bluemule.server.sync_cache import SyncCache


@dataclass
class ServerState:
    """Everything a request handler may need."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    admin_token_sha256: bytes
    signing_key: SigningKey
    secrets: SecretBox
    blobs: BlobStore
    sync_cache: SyncCache = field(default_factory=SyncCache)
    autocommit: Engine = field(init=False)
    """The engine in autocommit mode, for single-statement reads (same pool)."""

    def __post_init__(self) -> None:
        self.autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @property
    def signing_key_id(self) -> str:
        """Hex id of the release-signing key (part of the sync ETag)."""
        return self.signing_key.key_id.hex()


async def server_state(request: Request) -> ServerState:
    """The state of the app serving ``request`` (async: no thread hop for a dict lookup)."""
    state = request.app.state.bluemule
    assert isinstance(state, ServerState)
    return state


State = Annotated[ServerState, Depends(server_state)]


def db_session(state: State) -> Iterator[Session]:
    """One session per request; uncommitted work is rolled back."""
    with state.sessions() as session:
        yield session


DB = Annotated[Session, Depends(db_session)]


async def require_admin(request: Request, state: State) -> None:
    """Bearer authentication with the admin token."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("missing bearer token (Authorization: Bearer <admin token>)")
    digest = hashlib.sha256(token.strip().encode()).digest()
    if not hmac.compare_digest(digest, state.admin_token_sha256):
        raise UnauthorizedError("wrong admin token")


SETTINGS_ENV = "BLUEMULE_SERVER_SETTINGS"
"""How ``bluemule server --workers N`` hands the settings to its worker processes (JSON)."""


def settings_to_env(settings: Settings) -> str:
    """The JSON :func:`app_from_environment` reads back."""
    return json.dumps(
        {
            "data_dir": str(settings.data_dir),
            "database_url": settings.database_url,
            "webhook_worker": settings.webhook_worker,
            "retention_days": settings.retention_days,
        }
    )


def app_from_environment() -> FastAPI:
    """The app of one uvicorn worker process: settings from ``$BLUEMULE_SERVER_SETTINGS``.

    The parent (``bluemule server``) has bootstrapped the data directory already.
    """
    fields = json.loads(os.environ[SETTINGS_ENV])
    return create_app(
        Settings(
            data_dir=Path(fields["data_dir"]),
            database_url=fields["database_url"],
            webhook_worker=bool(fields["webhook_worker"]),
            retention_days=int(fields["retention_days"]),
        )
    )


def create_app(settings: Settings) -> FastAPI:
    """Build the server for a data directory that :func:`bootstrap` has set up."""
    from bluemule.server.api import admin_router  # noqa: PLC0415
    from bluemule.server.body_limit import BodyLimit  # noqa: PLC0415
    from bluemule.server.dashboard import install_dashboard  # noqa: PLC0415
    from bluemule.server.deviceos import deviceos_router  # noqa: PLC0415
    from bluemule.server.outbox import DeliveryWorker  # noqa: PLC0415
    from bluemule.server.relay_api import relay_router  # noqa: PLC0415
    from bluemule.server.retention import prune_forever  # noqa: PLC0415
    from bluemule.server.rollouts_api import rollouts_router  # noqa: PLC0415
    from bluemule.server.targeting_api import targeting_router  # noqa: PLC0415
    from bluemule.server.webhooks import webhooks_router  # noqa: PLC0415

    engine = make_engine(settings.db_url)
    sessions = make_sessionmaker(engine)
    track_revisions(sessions)
    state = ServerState(
        settings=settings,
        engine=engine,
        sessions=sessions,
        admin_token_sha256=hashlib.sha256(read_admin_token(settings).encode()).digest(),
        signing_key=read_signing_key(settings),
        secrets=SecretBox.load(settings),
        blobs=BlobStore(settings.blob_dir),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        """The webhook delivery worker and the retention pass run while the server does."""
        tasks: list[asyncio.Task[None]] = []
        if settings.retention_days > 0:
            tasks.append(asyncio.create_task(prune_forever(engine, settings.retention_days)))
        worker = DeliveryWorker(state.sessions) if settings.webhook_worker else None
        if worker is not None:
            tasks.append(asyncio.create_task(worker.run_forever(settings.webhook_poll_seconds)))
        try:
            yield
        finally:
            if worker is not None:
                worker.stopping.set()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if worker is not None:
                worker.close()

    app = FastAPI(
        lifespan=lifespan,
        title="bluemule fleet server",
        version=__version__,
        description="Releases, devices and relays of an offline Particle fleet.",
    )
    app.state.bluemule = state
    install_handlers(app)
    app.add_middleware(
        BodyLimit,
        max_request_bytes=settings.max_request_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )

    @app.get("/healthz", tags=["meta"])
    def healthz() -> dict[str, str]:
        """Liveness."""
        return {"status": "ok"}

    app.include_router(admin_router())
    app.include_router(targeting_router())
    app.include_router(relay_router())
    app.include_router(rollouts_router())
    app.include_router(webhooks_router())
    app.include_router(deviceos_router())
    install_dashboard(app)
    return app
