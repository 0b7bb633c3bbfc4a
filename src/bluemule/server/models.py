"""Tables (SQLAlchemy 2). The schema is created and migrated by Alembic (``migrations/``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    """Declarative base of every table."""


class Site(Base):
    """A place with devices and the relays that reach them."""

    __tablename__ = "sites"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    revision: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Bumped with every change that can alter the site's sync answer (migration 0005)."""


class FleetRevision(Base):
    """One row: bumped with every fleet-wide change that can alter sync answers (0005)."""

    __tablename__ = "fleet_revision"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)


class Relay(Base):
    """A phone or gateway; its bearer token is stored only as a SHA-256."""

    __tablename__ = "relays"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """Set by ``bluemule admin relay revoke``: the token stops working (migration 0007)."""
    site: Mapped[Site] = relationship()


class Device(Base):
    """A Particle device."""

    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(24), primary_key=True)  # 24 hex digits
    platform_id: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    development: Mapped[bool] = mapped_column(Boolean, default=False)
    locked_release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id"), nullable=True)
    mobile_secret: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    """Encrypted at rest (AES-GCM, key in the data directory); never listed."""
    serial: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The serial number on the label; its last 6 characters are the setup code a stock
    device advertises in listening mode (migration 0008)."""
    state: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    """Last reported: Device OS, app version and SHA-256, assets, mode, release counter."""
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_seen_relay_id: Mapped[int | None] = mapped_column(ForeignKey("relays.id"), nullable=True)
    last_rssi: Mapped[int | None] = mapped_column(Integer, nullable=True)
    site: Mapped[Site] = relationship()
    last_seen_relay: Mapped[Relay | None] = relationship(foreign_keys=[last_seen_relay_id])


class Blob(Base):
    """A file in the content-addressed store."""

    __tablename__ = "blobs"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)


class Release(Base):
    """An application (plus assets) for one platform; ``id`` is its release counter."""

    __tablename__ = "releases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform_id: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """Product version from the app's suffix."""
    min_device_os: Mapped[int] = mapped_column(Integer)
    app_sha256: Mapped[str] = mapped_column(String(64))
    """SHA-256 stored in the app's suffix (what a device reports when it runs it)."""
    original_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    original_name: Mapped[str] = mapped_column(String(255))
    notes: Mapped[str] = mapped_column(Text, default="")
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Device groups this release is released to."""
    product_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    app_assets: Mapped[list[list[str]]] = mapped_column(JSON, default=list)
    """The app's ASSET_DEPENDENCY list as ``[name, sha256 hex]`` pairs (migration 0002)."""
    parts: Mapped[list[ReleasePart]] = relationship(
        order_by="ReleasePart.index", cascade="all, delete-orphan"
    )


class ReleasePart(Base):
    """One part of a release, as sent to a device (compressed where the platform allows)."""

    __tablename__ = "release_parts"
    __table_args__ = (UniqueConstraint("release_id", "index"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    index: Mapped[int] = mapped_column(Integer)
    kind: Mapped[int] = mapped_column(Integer)  # bluemule.protocol.constants.PartKind
    name: Mapped[str] = mapped_column(String(64))
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    size: Mapped[int] = mapped_column(Integer)
    original_size: Mapped[int] = mapped_column(Integer)
    content_sha256: Mapped[str] = mapped_column(String(64))
    flags: Mapped[int] = mapped_column(Integer, default=0)


class DeviceOsPart(Base):
    """A Device OS module (system part or bootloader) a relay may send to a stock device
    over Device OS's control channel (``bluemule admin deviceos upload``, migration 0009)."""

    __tablename__ = "deviceos_parts"
    __table_args__ = (UniqueConstraint("platform_id", "function", "index", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform_id: Mapped[int] = mapped_column(Integer)
    function: Mapped[int] = mapped_column(Integer)  # bluemule.image.ModuleFunction
    index: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    """Module version: for system parts the Device OS version number (6300 = 6.3.0)."""
    bootloader_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The bootloader version a system part depends on, if it does."""
    name: Mapped[str] = mapped_column(String(255))
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Event(Base):
    """A device event carried by a relay; ``id`` is the dedupe key (device id + sequence)."""

    __tablename__ = "events"
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(24), index=True)
    name: Mapped[str] = mapped_column(String(64))
    data: Mapped[str | None] = mapped_column(Text, nullable=True)
    captured_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """When the device published it, if its clock was valid then."""
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """When the server received it."""
    relay_id: Mapped[int] = mapped_column(ForeignKey("relays.id"))
    relayed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """When the relay read it off the device (migration 0006)."""


class EventTombstone(Base):
    """Sequences of a device's relay-made event ids that retention pruned, as an inclusive
    range (migration 0010): such an id posted again is a duplicate. Retention merges
    adjacent and overlapping ranges, so a device normally has one row."""

    __tablename__ = "event_tombstones"
    device_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    first_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)


class Report(Base):
    """An update report or sighting from a relay; ``id`` (relay-chosen) makes posts idempotent."""

    __tablename__ = "reports"
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    relay_id: Mapped[int] = mapped_column(ForeignKey("relays.id"))
    device_id: Mapped[str] = mapped_column(String(24), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    body: Mapped[dict[str, object]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeviceUpdate(Base):
    """Where one device stands with a release, as its relays last reported (migration 0002)."""

    __tablename__ = "device_updates"
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    state: Mapped[str] = mapped_column(String(32))  # bluemule.server.rollouts.UpdateState
    progress: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """When the relay saw it (the newest report wins)."""
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    report_id: Mapped[str] = mapped_column(String(100))


class Webhook(Base):
    """A Particle-style webhook (``bluemule admin webhook add``); removal is a soft delete."""

    __tablename__ = "webhooks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event: Mapped[str] = mapped_column(String(64))
    """Event-name prefix (case-sensitive)."""
    url: Mapped[str] = mapped_column(Text)
    request_type: Mapped[str] = mapped_column(String(8), default="POST")
    format: Mapped[str] = mapped_column(String(8), default="form")
    template: Mapped[object] = mapped_column(JSON, nullable=True)
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    query: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    no_defaults: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class OutboxItem(Base):
    """One event to deliver to one webhook (the durable outbox)."""

    __tablename__ = "outbox"
    __table_args__ = (UniqueConstraint("event_id", "webhook_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"))
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id"), index=True)
    state: Mapped[str] = mapped_column(String(12), default="pending")
    """pending | delivering (claimed) | failed (retry scheduled) | delivered | dropped."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    locked_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DeliveryLog(Base):
    """One delivery attempt."""

    __tablename__ = "delivery_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(12))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Rollout(Base):
    """A staged rollout of one release (migration 0004); see :mod:`bluemule.server.rollouts`."""

    __tablename__ = "rollouts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"), index=True)
    stages: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    """``{"groups": [...]}`` or ``{"percent": n}`` per stage, in order."""
    success_threshold: Mapped[float] = mapped_column(Float)
    error_threshold: Mapped[float] = mapped_column(Float)
    assignments: Mapped[dict[str, int]] = mapped_column(JSON)
    """Device id → stage index, fixed when the rollout starts (``assign_stages``)."""
    stage: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(12))  # bluemule.server.rollouts.Status
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    active_release_id: Mapped[int | None] = mapped_column(Integer, nullable=True, unique=True)
    """The release while running or paused, NULL once finished: one active rollout a release."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
