"""Server settings, and the files a data directory holds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Where the server keeps its state."""

    data_dir: Path
    database_url: str | None = None
    """SQLAlchemy URL; default: SQLite ``DATA_DIR/bluemule.db`` (WAL)."""
    max_upload_bytes: int = 64 * 1024 * 1024
    max_request_bytes: int = 4 * 1024 * 1024
    """Cap on every other request body (JSON, forms): :mod:`bluemule.server.body_limit`."""
    webhook_worker: bool = True
    """Run the webhook delivery worker during the app's lifespan (``--no-webhooks``: off)."""
    webhook_poll_seconds: float = 1.0
    retention_days: int = 30
    """Prune delivered webhooks, delivery logs, events and reports older than this (0: never)."""

    @property
    def db_url(self) -> str:
        """The effective database URL."""
        return self.database_url or f"sqlite:///{self.data_dir / 'bluemule.db'}"

    @property
    def admin_token_path(self) -> Path:
        """The admin bearer token (created on first start, mode 0600)."""
        return self.data_dir / "admin-token"

    @property
    def signing_key_path(self) -> Path:
        """The release-signing key (Ed25519 PKCS#8, created on first start, mode 0600)."""
        return self.data_dir / "release-signing.pem"

    @property
    def secret_key_path(self) -> Path:
        """The key that encrypts mobile secrets at rest (created on first start)."""
        return self.data_dir / "secrets.key"

    @property
    def blob_dir(self) -> Path:
        """Content-addressed blobs."""
        return self.data_dir / "blobs"
