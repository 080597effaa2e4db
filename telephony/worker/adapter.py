"""The one module that imports the Telnyx SDK.

It turns each operation into one or more HTTP attempts that fit inside the request's
deadline, retries only idempotent operations, feeds every attempt to the circuit
breaker, and maps every SDK error into :mod:`telephony.exceptions`. Results are plain
dataclasses so nothing of the SDK leaks out. Nothing here logs or raises the API key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import telnyx

from telephony import exceptions as exc
from telephony.worker.adapter_recordings import RecordingOperations
from telephony.worker.breaker import CircuitBreaker
from telephony.worker.provider import CallInfo, CredentialInfo, DialResult, RequestContext
from telephony.worker.record_actions import RecordActions

logger = logging.getLogger(__name__)

T = TypeVar("T")

MIN_ATTEMPT_BUDGET = 0.03  # never start an attempt with less time than this left
DEADLINE_MARGIN = 0.02  # finish an attempt this much before the deadline
LIMIT_TITLES = ("limit reached", "level limit", "credential limit")
LIMIT_CODES = ("10039",)  # "A limit for this feature has been reached at this account level"
CALL_ENDED_CODES = ("90018",)  # "Call has already ended": a hangup that finds it over


def _parse_dt(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    # Telnyx's own examples carry no offset; its timestamps are UTC.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _title(body: Any) -> str:
    try:
        first = body["errors"][0]
        return f"{first.get('code', '')} {first.get('title', '')}".strip()
    except (KeyError, IndexError, TypeError):
        return ""


def _could_not_connect(e: BaseException) -> bool:
    """True when no connection was made (refused, unreachable, connect timeout).

    The aiohttp transport reports a refused connection as ``httpx.ConnectTimeout``;
    the cause chain says what really happened.
    """
    seen: BaseException | None = e
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, httpx.ConnectError | httpx.ConnectTimeout | ConnectionError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def map_error(e: BaseException) -> exc.TelephonyError:
    """Map an SDK or transport error into the service hierarchy (messages carry no secrets)."""
    if isinstance(e, exc.TelephonyError):
        return e
    if _could_not_connect(e):
        return exc.ProviderUnavailable("Could not reach Telnyx.", reason="connection_failed")
    if isinstance(e, telnyx.APITimeoutError | asyncio.TimeoutError):
        return exc.ProviderTimeout()
    if isinstance(e, telnyx.APIConnectionError | httpx.TransportError):
        return exc.ProviderUnavailable("Could not reach Telnyx.", reason="connection_failed")
    if isinstance(e, telnyx.APIResponseValidationError | ValueError):
        return exc.ProviderUnavailable(
            "Telnyx sent a malformed answer.", reason="malformed_response"
        )
    if isinstance(e, telnyx.APIStatusError):
        status, title = e.status_code, _title(e.body)
        message = f"Telnyx answered {status}" + (f": {title}" if title else ".")
        if status == 429:
            retry = e.response.headers.get("retry-after")
            try:
                retry_after = float(retry) if retry else None
            except ValueError:
                retry_after = None
            return exc.ProviderRateLimited(message, retry_after=retry_after)
        if status >= 500:
            return exc.ProviderUnavailable(message, reason=f"http_{status}")
        if title.split(" ", 1)[0] in CALL_ENDED_CODES:
            return exc.ProviderRejected(message, reason="call_ended")
        if title.split(" ", 1)[0] in LIMIT_CODES or any(t in title.lower() for t in LIMIT_TITLES):
            return exc.CredentialLimitReached(message)
        if status in (401, 403):
            return exc.ProviderRejected(message, reason="provider_auth")
        if status == 404:
            return exc.ProviderRejected(message, reason="provider_not_found")
        return exc.ProviderRejected(message, reason=f"http_{status}")
    return exc.ProviderUnavailable("Telnyx call failed unexpectedly.", reason="provider_unexpected")


def _require(value: Any, what: str) -> Any:
    if value in (None, ""):
        raise exc.ProviderUnavailable(f"Telnyx answer lacks {what}.", reason="malformed_response")
    return value


def preload_sdk() -> None:
    """Import what the SDK loads lazily (resources, the aiohttp client), without a request:
    the worker template calls this before forking, so no forked worker pays for it."""
    with telnyx.Telnyx(api_key="preload", base_url="http://127.0.0.1:9", max_retries=0) as client:
        _ = (client.calls.actions, client.telephony_credentials)
    _ = telnyx.DefaultAioHttpClient


class TelnyxAdapter(RecordActions, RecordingOperations):
    """Async Telnyx operations bounded by request deadlines, behind a circuit breaker.

    The record actions are in :mod:`telephony.worker.record_actions`, the recordings'
    retrieve, list and delete in :mod:`telephony.worker.adapter_recordings`.
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        breaker: CircuitBreaker,
        max_connections: int = 100,
        max_attempts: int = 3,
        clock: Callable[[], float] = time.time,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.breaker = breaker
        self.max_attempts = max_attempts
        self.clock = clock
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        # aiohttp under the SDK's httpx interface (its `aiohttp` extra): httpx's own pool
        # slows down badly with hundreds of concurrent requests. A caller may bring its own
        # client (event hooks, proxies, transport tests).
        self._http = http_client or telnyx.DefaultAioHttpClient(
            limits=limits, timeout=httpx.Timeout(10.0, connect=2.0)
        )
        self._client = telnyx.AsyncTelnyx(
            api_key=api_key, base_url=base_url, max_retries=0, http_client=self._http
        )
        # The SDK imports resources lazily (~1.4 s for `calls`). Pay for it now, before the
        # worker's first heartbeat, not inside its event loop on the first request, where
        # it would look like a hang to the supervisor.
        _ = (
            self._client.calls.actions,
            self._client.telephony_credentials,
            self._client.recordings,
        )

    def __repr__(self) -> str:
        return f"TelnyxAdapter(base_url={str(self._client.base_url)!r})"

    async def aclose(self) -> None:
        await self._client.close()

    # -- the attempt loop ---------------------------------------------------------------

    async def _call(
        self,
        ctx: RequestContext,
        op: str,
        fn: Callable[[float], Awaitable[T]],
        *,
        idempotent: bool,
    ) -> T:
        attempts = self.max_attempts if idempotent else 1
        for attempt in range(1, attempts + 1):
            budget = ctx.remaining(self.clock) - DEADLINE_MARGIN
            if budget < MIN_ATTEMPT_BUDGET:
                raise exc.ProviderTimeout("No time left before the request's deadline.")
            if not self.breaker.allow():
                raise exc.CircuitOpen()
            started = time.monotonic()
            try:
                async with asyncio.timeout(budget):  # no extra task, unlike wait_for
                    result = await fn(budget)
            except Exception as e:  # every failure is mapped; nothing escapes unmapped
                err = map_error(e)
                self.breaker.record(
                    success=not isinstance(
                        err, exc.ProviderUnavailable | exc.ProviderTimeout | exc.ProviderRateLimited
                    ),
                    duration=time.monotonic() - started,
                )
                retryable = isinstance(err, exc.ProviderUnavailable | exc.ProviderRateLimited)
                logger.warning(
                    "[Telnyx Adapter] request_id=%s op=%s attempt=%d failed: %s (%s)",
                    ctx.request_id, op, attempt, err.reason, err.message,
                )  # fmt: skip
                if not (idempotent and retryable and attempt < attempts):
                    raise err from e
                pause = min(0.05 * 2 ** (attempt - 1), 1.0) * (0.5 + random.random())  # noqa: S311
                if err.retry_after:
                    pause = max(pause, err.retry_after)
                if ctx.remaining(self.clock) - pause < MIN_ATTEMPT_BUDGET + DEADLINE_MARGIN:
                    raise err from e
                await asyncio.sleep(pause)
                continue
            self.breaker.record(success=True, duration=time.monotonic() - started)
            return result
        raise exc.ProviderTimeout()  # unreachable: the loop returns or raises

    # -- operations ---------------------------------------------------------------------

    async def create_credential(
        self, ctx: RequestContext, *, connection_id: str, name: str, tag: str, expires_at: datetime
    ) -> CredentialInfo:
        """Create a credential. Not idempotent: never retried (a retry could leak one)."""

        async def go(timeout: float) -> Any:
            return await self._client.telephony_credentials.create(
                connection_id=connection_id,
                name=name,
                tag=tag,
                expires_at=expires_at.isoformat(),
                extra_headers=ctx.headers(),
                timeout=timeout,
            )

        resp = await self._call(ctx, "credential.create", go, idempotent=False)
        return self._credential(getattr(resp, "data", None))

    async def create_token(self, ctx: RequestContext, credential_id: str) -> str:
        """Mint a WebRTC login token (a JWT, answered as text/plain)."""

        async def go(timeout: float) -> Any:
            return await self._client.telephony_credentials.create_token(
                credential_id,
                idempotency_key=ctx.request_id,
                extra_headers=ctx.headers(),
                timeout=timeout,
            )

        token = await self._call(ctx, "credential.token", go, idempotent=True)
        if not isinstance(token, str) or token.count(".") != 2:
            raise exc.ProviderUnavailable(
                "Telnyx sent a malformed token.", reason="malformed_response"
            )
        return token.strip()

    async def delete_credential(self, ctx: RequestContext, credential_id: str) -> bool:
        """Delete a credential; True if it was deleted now, False if it was already gone."""

        async def go(timeout: float) -> Any:
            return await self._client.telephony_credentials.delete(
                credential_id, extra_headers=ctx.headers(), timeout=timeout
            )

        return await self._delete(ctx, "credential.delete", go)

    async def _delete(self, ctx: RequestContext, op: str, go: Any) -> bool:
        """Run a DELETE: True if it deleted now, False if Telnyx says it was already gone."""
        try:
            await self._call(ctx, op, go, idempotent=True)
        except exc.ProviderRejected as e:
            if e.reason == "provider_not_found":
                return False
            raise
        return True

    async def list_credentials(
        self, ctx: RequestContext, *, tag: str | None, page_number: int, page_size: int
    ) -> tuple[list[CredentialInfo], int]:
        """One page of the account's credentials (optionally by tag) and the page count."""

        async def go(timeout: float) -> Any:
            query: dict[str, Any] = {"page_number": page_number, "page_size": page_size}
            if tag:
                query["filter"] = {"tag": tag}
            return await self._client.telephony_credentials.with_raw_response.list(
                **query, extra_headers=ctx.headers(), timeout=timeout
            )

        raw = await self._call(ctx, "credential.list", go, idempotent=True)
        body = json.loads(raw.http_response.content)
        items = [self._credential(item) for item in body.get("data") or []]
        meta = body.get("meta") or {}
        return items, int(meta.get("total_pages") or 1)

    async def list_all_credentials(
        self,
        next_ctx: Callable[[], RequestContext],
        *,
        tag: str | None,
        max_pages: int,
        page_size: int = 250,
    ) -> tuple[list[CredentialInfo], bool]:
        """Every page of the listing, up to ``max_pages``; True when pages were left over."""
        found: list[CredentialInfo] = []
        page, pages = 1, 1
        while page <= min(pages, max_pages):
            items, pages = await self.list_credentials(
                next_ctx(), tag=tag, page_number=page, page_size=page_size
            )
            found.extend(items)
            page += 1
        return found, pages > max_pages

    async def dial(
        self,
        ctx: RequestContext,
        *,
        connection_id: str,
        to: str,
        from_: str,
        client_state: str,
        webhook_url: str = "",
        link_to: str = "",
        bridge_on_answer: bool = False,
        timeout_secs: int | None = None,
        record: dict[str, Any] | None = None,
    ) -> DialResult:
        """Place a call. Not idempotent: never retried (a retry could ring someone twice).

        ``client_state`` is sent as given: already base64 (``telephony.legs``), as Telnyx
        requires. ``link_to`` another leg's call_control_id with ``bridge_on_answer``
        joins the new leg to it the moment it is answered. ``timeout_secs`` (5-600)
        is how long Telnyx lets it ring before ending it with cause ``timeout``. ``record``:
        Dial's ``record``/``record_channels``/``record_format`` fields (recording policy).
        """
        extra: dict[str, Any] = {"webhook_url": webhook_url} if webhook_url else {}
        extra.update(record or {})
        if link_to:
            extra["link_to"] = link_to
            extra["bridge_on_answer"] = bridge_on_answer
        elif bridge_on_answer:
            raise exc.InvalidRequest("bridge_on_answer needs link_to.")
        if timeout_secs is not None:
            extra["timeout_secs"] = min(max(int(timeout_secs), 5), 600)

        async def go(timeout: float) -> Any:
            return await self._client.calls.dial(
                connection_id=connection_id,
                to=to,
                from_=from_,
                client_state=client_state,
                extra_headers=ctx.headers(),
                timeout=timeout,
                **extra,
            )

        resp = await self._call(ctx, "call.dial", go, idempotent=False)
        data = getattr(resp, "data", None)
        return DialResult(
            call_control_id=_require(getattr(data, "call_control_id", None), "call_control_id"),
            call_session_id=getattr(data, "call_session_id", "") or "",
            call_leg_id=getattr(data, "call_leg_id", "") or "",
        )

    async def call_status(self, ctx: RequestContext, call_control_id: str) -> CallInfo:
        """Whether the call is still up, and for how long it has been."""

        async def go(timeout: float) -> Any:
            return await self._client.calls.retrieve_status(
                call_control_id, extra_headers=ctx.headers(), timeout=timeout
            )

        resp = await self._call(ctx, "call.status", go, idempotent=True)
        data = _require(getattr(resp, "data", None), "data")
        return CallInfo(
            call_control_id=call_control_id,
            is_alive=bool(getattr(data, "is_alive", False)),
            call_duration=getattr(data, "call_duration", None),
        )

    async def hangup(
        self, ctx: RequestContext, call_control_id: str, *, command_id: str = ""
    ) -> bool:
        """Hang up; True if it ended now, False if it had already ended (not an error).

        Retried safely because Telnyx ignores a repeated ``command_id`` (one per leg:
        default the request id). Telnyx's "call has already ended" (90018) and an
        unknown call both mean the leg is down, which is what a hangup wants.
        """

        async def go(timeout: float) -> Any:
            return await self._client.calls.actions.hangup(
                call_control_id,
                command_id=command_id or ctx.request_id,
                extra_headers=ctx.headers(),
                timeout=timeout,
            )

        try:
            await self._call(ctx, "call.hangup", go, idempotent=True)
        except exc.ProviderRejected as e:
            if e.reason in ("call_ended", "provider_not_found"):
                return False
            raise
        return True

    @staticmethod
    def _credential(data: Any) -> CredentialInfo:
        get = data.get if isinstance(data, dict) else lambda k, d=None: getattr(data, k, d)
        return CredentialInfo(
            id=_require(get("id"), "credential id"),
            sip_username=_require(get("sip_username"), "sip_username"),
            name=get("name") or "",
            tag=get("tag") or "",
            expires_at=_parse_dt(get("expires_at")),
            created_at=_parse_dt(get("created_at")),
            expired=bool(get("expired", False)),
        )
