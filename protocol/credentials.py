"""The token a client connects with: a bot's API token as given, or a person's access
token from `POST /api/auth/login`, refreshed through `POST /api/auth/refresh`."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import msgspec

from protocol.errors import HubError, Unauthorized, Unavailable, from_dict
from protocol.models import User

# Renew an access token this long before it expires (a connect takes a moment).
RENEW_MARGIN = 30.0


class Credentials:
    """Hands out a token for the next connect; renews a person's when it is about to
    expire or after the hub refused it."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        email: str | None = None,
        password: str | None = None,
    ) -> None:
        if (token is None) == (email is None or password is None):
            raise ValueError("give either token, or email and password")
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._email = email
        self._password = password
        self._refresh_token: str | None = None
        self._expires_at = float("inf") if token is not None else 0.0
        self.user: User | None = None  # known after a login

    @property
    def renewable(self) -> bool:
        """Whether a refused token can be replaced (a login can; an API token cannot)."""
        return self._email is not None

    def expire(self) -> None:
        """The hub refused the token: get a new one before the next connect."""
        if self.renewable:
            self._expires_at = 0.0

    async def token(self, http: aiohttp.ClientSession) -> str:
        if self._token is None or time.monotonic() >= self._expires_at - RENEW_MARGIN:
            await self._renew(http)
        assert self._token is not None
        return self._token

    async def _renew(self, http: aiohttp.ClientSession) -> None:
        if self._refresh_token is not None:
            try:
                body = await self._post(
                    http, "/api/auth/refresh", {"refresh_token": self._refresh_token}
                )
            except Unauthorized:
                self._refresh_token = None  # spent or revoked: log in again
            else:
                self._accept(body)
                return
        body = await self._post(
            http, "/api/auth/login", {"email": self._email, "password": self._password}
        )
        self._accept(body)

    def _accept(self, body: dict[str, Any]) -> None:
        self._token = str(body["access_token"])
        self._refresh_token = str(body["refresh_token"])
        self._expires_at = time.monotonic() + float(body["expires_in"])
        self.user = msgspec.convert(body["user"], User)

    async def _post(
        self, http: aiohttp.ClientSession, path: str, json: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            async with http.post(self._base_url + path, json=json) as resp:
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise Unavailable(f"{path}: {exc!r}") from exc
        if resp.status >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            raise (
                from_dict(error)
                if isinstance(error, dict)
                else HubError(f"{path} answered {resp.status}")
            )
        if not isinstance(body, dict):
            raise Unavailable(f"{path} answered {body!r}")
        return body
