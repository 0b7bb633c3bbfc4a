"""The admin API calls the demo makes, over HTTP like any operator's tool."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from bluemule.demo.model import DemoError

TIMEOUT = 30.0


class AdminClient:
    """``/api/admin/v1`` of a server, with its admin token."""

    def __init__(self, server_url: str, token: str) -> None:
        self._client = httpx.AsyncClient(
            base_url=server_url.rstrip("/") + "/api/admin/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request; an error answer is a :class:`DemoError` with the server's detail."""
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise DemoError(f"the fleet server did not answer {method} {path}: {exc}") from None
        if response.is_error:
            try:
                detail = response.json().get("detail") or response.reason_phrase
            except (ValueError, AttributeError):
                detail = response.text[:200]
            raise DemoError(f"the fleet server refused {method} {path}: {detail}")
        return None if response.status_code == 204 else response.json()

    async def add_relay(self, name: str, site: str) -> str:
        """A relay of ``site``; returns its token."""
        created = await self.call("POST", "/relays", json={"name": name, "site": site})
        return str(created["token"])

    async def add_device(
        self, device_id: str, platform: str, product_id: int, site: str, groups: Sequence[str]
    ) -> None:
        """Register a device."""
        body = {
            "id": device_id,
            "platform": platform,
            "product_id": product_id,
            "site": site,
            "groups": list(groups),
        }
        await self.call("POST", "/devices", json=body)

    async def add_webhook(self, event: str, url: str, headers: dict[str, str]) -> int:
        """A form webhook (Particle's defaults) for events whose name starts with ``event``."""
        body = {"event": event, "url": url, "headers": headers}
        created = await self.call("POST", "/webhooks", json=body)
        return int(created["id"])

    async def upload_release(self, data: bytes, filename: str, notes: str) -> dict[str, Any]:
        """Upload a bundle (or ``.bin``); returns the stored release."""
        release: dict[str, Any] = await self.call(
            "POST",
            "/releases",
            content=data,
            params={"filename": filename, "notes": notes},
            headers={"Content-Type": "application/octet-stream"},
        )
        return release

    async def publish(self, release_id: int) -> None:
        """Make the release its product's default."""
        await self.call("POST", f"/releases/{release_id}/publish", json={"product_default": True})

    async def start_rollout(
        self, release_id: int, stages: list[dict[str, Any]], success: float, error: float
    ) -> dict[str, Any]:
        """Start a staged rollout; returns its status."""
        body = {
            "release_id": release_id,
            "stages": stages,
            "success_threshold": success,
            "error_threshold": error,
        }
        status: dict[str, Any] = await self.call("POST", "/rollouts", json=body)
        return status

    async def rollout(self, rollout_id: int) -> dict[str, Any]:
        """A rollout's status (stages, devices and their states)."""
        status: dict[str, Any] = await self.call("GET", f"/rollouts/{rollout_id}")
        return status

    async def deliveries(self, webhook_id: int) -> list[dict[str, Any]]:
        """The webhook's delivery log, newest first (at most 1,000 attempts)."""
        log: list[dict[str, Any]] = await self.call(
            "GET", "/deliveries", params={"webhook": webhook_id, "limit": 1000}
        )
        return log
