"""The relay's settings (a TOML or JSON file, overridden by command-line flags) and its logs.

Logs are structured: one line per event, ``event=name key=value …`` or a JSON object.
Fields whose name says they carry a secret (token, secret, key, password) are written as
``***``, and the relay token is scrubbed from every message, whatever logger wrote it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

LOGGER: Final = logging.getLogger("bluemule.relay")
_SECRET_FIELD: Final = re.compile(r"token|secret|password|key$", re.IGNORECASE)
_WINDOW: Final = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")


class ConfigError(Exception):
    """A configuration file or value the relay cannot use."""


@dataclass(frozen=True)
class MaintenanceWindow:
    """Updates may start only between ``start`` and ``end`` (UTC, may wrap midnight)."""

    start: dt.time
    end: dt.time

    @classmethod
    def parse(cls, text: str) -> MaintenanceWindow:
        """``"HH:MM-HH:MM"`` (UTC)."""
        match = _WINDOW.match(text.strip())
        if not match:
            raise ConfigError(f"maintenance window {text!r} is not HH:MM-HH:MM")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        try:
            return cls(dt.time(h1, m1), dt.time(h2, m2))
        except ValueError as exc:
            raise ConfigError(f"maintenance window {text!r}: {exc}") from None

    def allows(self, moment: dt.datetime) -> bool:
        """Whether an update may start at ``moment``."""
        now = moment.astimezone(dt.UTC).time().replace(tzinfo=None)
        if self.start <= self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end


@dataclass(frozen=True)
class RelayConfig:
    """Everything the relay agent needs."""

    server_url: str
    token: str = field(repr=False)
    cache_dir: Path
    transport: str = "ble"
    """``ble`` (the OS stack via bleak) or ``bumble:<transport>`` (e.g. ``bumble:usb:0``)."""
    cache_max_bytes: int = 512 * 1024 * 1024
    sync_interval: float = 60.0
    """Seconds between syncs (and uploads) while online."""
    scan_seconds: float = 3.0
    """How long each BLE sweep listens."""
    sighting_interval: float = 300.0
    """Connect to a device with no work at most this often (to report its state)."""
    maintenance_window: MaintenanceWindow | None = None
    retry_base: float = 30.0
    """Backoff after a failed or interrupted update: base × 2^(failures-1) seconds …"""
    retry_max: float = 3600.0
    """… capped at this."""
    progress_interval: float = 5.0
    """Report ``transferring`` at most this often per device."""
    event_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not self.server_url.startswith(("http://", "https://")):
            raise ConfigError(f"server URL {self.server_url!r} must start with http(s)://")
        if not self.token:
            raise ConfigError("a relay token is needed (--token, BLUEMULE_RELAY_TOKEN or config)")
        if self.transport != "ble" and not self.transport.startswith("bumble:"):
            raise ConfigError(f"transport {self.transport!r} is neither 'ble' nor 'bumble:…'")
        if self.cache_max_bytes <= 0:
            raise ConfigError("cache_max_bytes must be positive")

    @property
    def journal_path(self) -> Path:
        """The SQLite journal (outbox, sync state, checkpoints)."""
        return self.cache_dir / "journal.sqlite3"

    @property
    def blob_dir(self) -> Path:
        """The content-addressed blobs."""
        return self.cache_dir / "blobs"


_FIELDS: Final = {f.name for f in dataclasses.fields(RelayConfig)}


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings in a ``.toml`` or ``.json`` file (keys as in :class:`RelayConfig`)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a table of settings")
    if unknown := sorted(set(data) - _FIELDS):
        raise ConfigError(f"{path}: unknown setting {unknown[0]!r}")
    return data


def readable_by_others(path: Path) -> bool:
    """Whether a settings file (which may hold the token) is readable by group or others."""
    try:
        return bool(path.stat().st_mode & 0o044)
    except OSError:
        return False


def build_config(values: Mapping[str, Any]) -> RelayConfig:
    """A checked :class:`RelayConfig` from file values and flags (None means unset)."""
    given = {k: v for k, v in values.items() if v is not None}
    for name in ("server_url", "cache_dir"):
        if name not in given:
            raise ConfigError(f"{name.replace('_', '-')} is not set")
    if "token" not in given:
        raise ConfigError("a relay token is needed (--token, BLUEMULE_RELAY_TOKEN or config)")
    window = given.get("maintenance_window")
    try:
        return RelayConfig(
            **{
                **given,
                "cache_dir": Path(given["cache_dir"]).expanduser(),
                "maintenance_window": MaintenanceWindow.parse(window) if window else None,
            }
        )
    except TypeError as exc:
        raise ConfigError(str(exc)) from None


# --- logging --------------------------------------------------------------------------


def redact(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` with every secret-named value replaced by ``***``."""
    return {k: "***" if _SECRET_FIELD.search(k) else v for k, v in fields.items()}


_RUNTIME_SECRETS: set[str] = set()
"""Secrets learned while running (opened mobile secrets): scrubbed from every log line."""


def scrub_from_logs(secret: str) -> None:
    """From now on, replace ``secret`` with ``***`` in every formatted log line."""
    if secret:
        _RUNTIME_SECRETS.add(secret)


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event (secret-named fields redacted)."""
    LOGGER.log(level, event, extra={"fields": redact(fields)})


class StructuredFormatter(logging.Formatter):
    """``ts level event key=value …`` or one JSON object per line; scrubs ``secrets``."""

    def __init__(self, *, as_json: bool, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.as_json = as_json
        self.secrets = tuple(s for s in secrets if s)

    def format(self, record: logging.LogRecord) -> str:
        """Render and scrub."""
        fields: dict[str, Any] = dict(getattr(record, "fields", {}))
        at = dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")
        if self.as_json:
            doc = {"ts": at, "level": record.levelname.lower(), "event": record.getMessage()}
            text = json.dumps({**doc, **fields}, default=str, sort_keys=False)
        else:
            pairs = " ".join(f"{k}={_kv(v)}" for k, v in fields.items())
            text = f"{at} {record.levelname.lower()} event={record.getMessage()} {pairs}".rstrip()
        for secret in (*self.secrets, *_RUNTIME_SECRETS):
            text = text.replace(secret, "***")
        return text


def _kv(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in ' "=')) else text


def setup_logging(*, as_json: bool, secrets: tuple[str, ...], level: int = logging.INFO) -> None:
    """Send every log record (relay, httpx, bumble) to stderr, structured and scrubbed."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(StructuredFormatter(as_json=as_json, secrets=secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    LOGGER.setLevel(level)
