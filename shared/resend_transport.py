"""resend's async transport on one long-lived httpx client, imported only when Resend is used."""

from __future__ import annotations

from typing import Any

import httpx
from resend.exceptions import ResendError
from resend.http_client_async import AsyncHTTPClient

__all__ = ["SharedHttpxClient", "TransportError"]


class SharedHttpxClient(AsyncHTTPClient):
    """resend's async transport on one long-lived httpx client (theirs opens one per call)."""

    def __init__(self, timeout: float) -> None:
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)

    async def request(
        self,
        method: str,
        url: str,
        headers: Any,
        json: Any = None,
        files: Any = None,
        data: Any = None,
    ) -> tuple[bytes, int, Any]:
        try:
            response = await self._client.request(
                method, url, headers=dict(headers), json=json, data=data, files=files
            )
        except httpx.TimeoutException as exc:
            raise TransportError("the request to Resend timed out") from exc
        except httpx.TransportError as exc:
            raise TransportError(f"could not reach Resend ({type(exc).__name__})") from exc
        return response.content, response.status_code, response.headers

    async def aclose(self) -> None:
        await self._client.aclose()


class TransportError(ResendError):
    """Resend unreachable or too slow: an error of the SDK's kind, so it maps like one."""

    def __init__(self, message: str) -> None:
        super().__init__(code=0, error_type="transport_error", message=message, suggested_action="")
