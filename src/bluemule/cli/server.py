"""``bluemule server``: run the fleet server."""

from __future__ import annotations

import os
from pathlib import Path

import click

from bluemule.cli.common import fail


@click.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=lambda: os.environ.get("BLUEMULE_DATA", "bluemule-data"),
    show_default="$BLUEMULE_DATA or ./bluemule-data",
    help="Database (SQLite by default), blobs, keys and the admin token.",
)
@click.option(
    "--database-url",
    envvar="BLUEMULE_DATABASE_URL",
    help="SQLAlchemy URL, e.g. postgresql://user@host/db (default: SQLite in the data dir).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8700, show_default=True)
@click.option(
    "--webhooks/--no-webhooks",
    default=True,
    show_default=True,
    help="Deliver webhooks from this process (any number of servers may share the work).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes sharing the port (each also delivers webhooks); the database "
    "keeps them consistent.",
)
@click.option(
    "--retention-days",
    type=click.IntRange(0, 36_500),
    default=30,
    show_default=True,
    help="Prune delivered webhooks, delivery logs, events and reports older than this "
    "(hourly; undelivered webhooks are kept). 0 keeps everything.",
)
def server(
    data_dir: Path,
    database_url: str | None,
    host: str,
    port: int,
    webhooks: bool,
    workers: int,
    retention_days: int,
) -> None:
    """Run the fleet server (creates the data directory, keys and admin token on first start)."""
    import uvicorn  # noqa: PLC0415
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

    from bluemule.server.app import SETTINGS_ENV, create_app, settings_to_env  # noqa: PLC0415
    from bluemule.server.config import Settings  # noqa: PLC0415
    from bluemule.server.files import DataDirError, bootstrap  # noqa: PLC0415

    settings = Settings(
        data_dir=data_dir.expanduser().resolve(),
        database_url=database_url,
        webhook_worker=webhooks,
        retention_days=retention_days,
    )
    try:
        setup = bootstrap(settings)
        app = create_app(settings)
    except DataDirError as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        fail(f"cannot open the database: {str(exc).splitlines()[0]}")
    for label, path in (
        ("admin token", settings.admin_token_path),
        ("release-signing key", settings.signing_key_path),
        ("secrets key", settings.secret_key_path),
    ):
        note = " (created)" if path in setup.created else ""
        click.echo(f"{label}: {path}{note}")
    click.echo(f"database: {settings.db_url.split('@')[-1] if database_url else settings.db_url}")
    if port:
        click.echo(f"serving on http://{host}:{port} (OpenAPI: /openapi.json, docs: /docs)")
        click.echo(f"dashboard: http://{host}:{port}/dashboard/ (log in with the admin token)")
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level="info")
        return
    app.state.bluemule.engine.dispose()  # each worker process opens its own
    os.environ[SETTINGS_ENV] = settings_to_env(settings)
    click.echo(f"{workers} worker processes")
    uvicorn.run(
        "bluemule.server.app:app_from_environment",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level="info",
    )
