"""The relay's side of the fleet server's relay API (``/api/relay/v1``), over httpx.

Sync with ``If-None-Match``; blob downloads that resume with ``Range`` from the cache's
partial file; reports and events posted in batches (idempotent by id on the server).
Failures are typed: :class:`Offline` (no answer: try later), :class:`Unauthorized`
(wrong token: an operator must act), :class:`ServerError` (5xx: try later),
:class:`RejectedError` (the server refused the request itself). The token is sent in a
header and never appears in a repr, an exception or a log line.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from bluemule.relay.cache import BlobCache, CorruptBlobError

API: Final = "/api/relay/v1"
_HEX64: Final = re.compile(r"^[0-9a-fA-F]{64}$")
_DEVICE_ID: Final = re.compile(r"^[0-9a-fA-F]{24}$")
_SETUP_CODE: Final = re.compile(r"^[0-9A-Z]{6}$")


class ServerClientError(Exception):
    """Root of relay API failures."""


class Offline(ServerClientError):  # noqa: N818  the state, not an "Error"
    """The server did not answer (no network, refused, timed out)."""


class Unauthorized(ServerClientError):  # noqa: N818
    """The server refused the relay token."""


class ServerError(ServerClientError):
    """The server answered 5xx."""


class RejectedError(ServerClientError):
    """The server refused the request (4xx other than 401), or answered nonsense."""


@dataclass(frozen=True)
class DesiredPart:
    """One part of a release: its blob in the cache."""

    index: int
    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class DesiredUpdate:
    """What one device should install, as the server signed it for that device."""

    device_id: str
    release_id: int
    manifest: bytes
    manifest_sha256: str
    parts: tuple[DesiredPart, ...]
    platform_id: int | None = None
    setup_code: str | None = None
    """What the device advertises in listening mode (its serial number's last 6 characters)."""
    min_device_os: int = 0
    device_os_parts: tuple[DesiredPart, ...] = ()
    """Device OS modules to install first over the control channel (not in the manifest:
    checked by SHA-256 from the sync answer and by :mod:`bluemule.image`)."""
    mobile_secret_sealed: str | None = field(default=None, repr=False)
    """Sealed for this relay (:mod:`bluemule.relay.sealed`); opened only right before a
    handshake, never stored or logged in clear."""


def parse_desired(body: dict[str, Any]) -> dict[str, DesiredUpdate]:
    """The sync body's devices by id; :class:`RejectedError` if it is malformed."""
    out: dict[str, DesiredUpdate] = {}
    try:
        for item in body["devices"]:
            parts = _parts(item["parts"])
            device_id = _matching(_DEVICE_ID, item["device_id"], "device id")
            out[device_id] = DesiredUpdate(
                device_id,
                int(item["release_id"]),
                base64.b64decode(item["manifest"], validate=True),
                _matching(_HEX64, item["manifest_sha256"], "manifest SHA-256"),
                parts,
                platform_id=_optional_int(item.get("platform_id")),
                setup_code=_optional_code(item.get("setup_code")),
                min_device_os=_optional_int(item.get("min_device_os")) or 0,
                device_os_parts=_parts(item.get("device_os_parts") or []),
                mobile_secret_sealed=_optional_str(item.get("mobile_secret_sealed")),
            )
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise RejectedError(f"malformed sync body: {exc!r}") from None
    return out


def _parts(items: Any) -> tuple[DesiredPart, ...]:
    return tuple(
        DesiredPart(
            int(p["index"]),
            str(p["name"]),
            _matching(_HEX64, p["blob"], "blob"),
            _non_negative(p["size"]),
        )
        for p in sorted(items, key=lambda p: int(p["index"]))
    )


def parse_release_key(body: dict[str, Any]) -> bytes | None:
    """The server's Ed25519 manifest key in a sync body (None from a server without it)."""
    value = body.get("release_key")
    if value is None:
        return None
    try:
        key = base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise RejectedError("malformed sync body: release_key is not base64") from None
    if len(key) != 32:
        raise RejectedError("malformed sync body: release_key is not an Ed25519 public key")
    return key


def _optional_int(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"integer {value!r}")
    return value


def _optional_code(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _SETUP_CODE.match(value):
        raise ValueError(f"setup code {value!r}")
    return value


def _optional_str(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 1024:
        raise ValueError("sealed mobile secret")
    return value


def _matching(pattern: re.Pattern[str], value: object, what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"{what} {value!r}")
    return value.lower()


def _non_negative(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"size {value!r}")
    return value


@dataclass(frozen=True)
class SyncResult:
    """A sync: ``body`` is None when the desired state did not change (304)."""

    etag: str | None
    body: dict[str, Any] | None


@dataclass(frozen=True)
class Accepted:
    """The server's count of new and already-stored items."""

    accepted: int
    duplicates: int


class ServerClient:
    """An async client of one server for one relay token."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url + API,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"ServerClient({self.base_url!r})"

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _send(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        try:
            response = await self._http.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise Offline(f"{self.base_url}: {type(exc).__name__}") from None
        if response.status_code < 400 or response.status_code == 416:
            return response
        if stream:
            await response.aread()
            await response.aclose()
        detail = _detail(response)
        if response.status_code == 401:
            raise Unauthorized(f"{self.base_url} refused the relay token: {detail}")
        if response.status_code >= 500:
            raise ServerError(f"{self.base_url} answered {response.status_code}: {detail}")
        raise RejectedError(f"{request.url.path}: {response.status_code} {detail}")

    async def sync(self, etag: str | None = None) -> SyncResult:
        """The desired state of the site's devices; ``body`` None when unchanged."""
        headers = {"If-None-Match": etag} if etag else {}
        response = await self._send(self._http.build_request("GET", "/sync", headers=headers))
        new_etag = response.headers.get("etag", etag)
        if response.status_code == 304:
            return SyncResult(new_etag, None)
        try:
            body = response.json()
        except ValueError:
            raise RejectedError("the sync answer is not JSON") from None
        if not isinstance(body, dict):
            raise RejectedError("the sync answer is not a JSON object")
        parse_desired(body)  # validate now, not when a device is in range
        parse_release_key(body)
        return SyncResult(new_etag, body)

    async def download(self, cache: BlobCache, sha256: str, size: int) -> int:
        """Fetch a blob into ``cache`` (resuming a partial file); returns bytes transferred.

        Verified before it is kept: a corrupt download raises :class:`CorruptBlobError`.
        """
        if cache.has(sha256):
            return 0
        partial = cache.partial(sha256, size)
        offset = partial.offset
        if offset > size:
            partial.restart()
            offset = 0
        headers = {"If-Range": f'"{sha256}"'}
        if 0 < offset < size:
            headers["Range"] = f"bytes={offset}-"
        transferred = 0
        if offset < size:
            request = self._http.build_request("GET", f"/blobs/{sha256}", headers=headers)
            response = await self._send(request, stream=True)
            try:
                if response.status_code == 416:
                    partial.restart()
                    raise CorruptBlobError(f"blob {sha256}: the server has no such range")
                if response.status_code == 200 and offset:
                    partial.restart()  # the whole blob is coming again
                async for chunk in response.aiter_bytes():
                    partial.write(chunk)
                    transferred += len(chunk)
            except httpx.TransportError:
                raise Offline(f"{self.base_url}: download of {sha256} interrupted") from None
            finally:
                partial.close()
                await response.aclose()
        partial.commit()
        return transferred

    async def post_reports(self, reports: Sequence[dict[str, Any]]) -> Accepted:
        """Upload reports (each with its id)."""
        return await self._post("/reports", {"reports": list(reports)})

    async def post_events(self, events: Sequence[dict[str, Any]]) -> Accepted:
        """Upload events (each with its id)."""
        return await self._post("/events", {"events": list(events)})

    async def _post(self, path: str, body: dict[str, Any]) -> Accepted:
        response = await self._send(self._http.build_request("POST", path, json=body))
        try:
            data = response.json()
            return Accepted(int(data["accepted"]), int(data["duplicates"]))
        except (ValueError, KeyError, TypeError):
            raise RejectedError(f"{path}: the answer is not {{accepted, duplicates}}") from None


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:300]
    return response.reason_phrase
