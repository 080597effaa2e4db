"""The telephony service's exception hierarchy, written out in one place.

Every error carries the HTTP status the API answers with and a machine ``code`` from
the public contract. ``reason`` is a finer machine detail (``credential_limit``,
``timeout``, ``circuit_open`` ...) recorded on call rows and in metrics. Messages are
for people and never contain secrets: the adapter builds them from status codes and
Telnyx error titles only.

    TelephonyError                       500 internal_error
    ├── InvalidRequest                   400 invalid_request
    │   ├── InvalidNumber                400 invalid_number
    │   └── WebhookRejected              400 invalid_request (nothing of it is stored)
    │       ├── InvalidSignature         400 invalid_signature
    │       ├── StaleTimestamp           400 stale_timestamp
    │       └── PayloadTooLarge          413 invalid_request
    ├── NotAuthenticated                 401 not_authenticated
    ├── Forbidden                        403 forbidden
    │   └── DestinationNotAllowed        403 destination_not_allowed
    ├── NotFound                         404 not_found
    ├── NoCredential                     409 no_credential
    ├── SeatLimit                        409 seat_limit (every seat held by an online agent)
    ├── CallNotAnswered                  409 call_not_answered (recording needs a live call)
    ├── RecordingDisabled                409 recording_disabled (policy is not on_demand)
    ├── RateLimited                      429 rate_limited
    ├── ProviderError                    502 provider_error
    │   ├── ProviderRejected             502 provider_error (Telnyx 4xx)
    │   │   └── CredentialLimitReached   502 provider_error (account credential limit)
    │   ├── ProviderRateLimited          502 provider_error (Telnyx 429)
    │   ├── ProviderUnavailable          502 provider_error (5xx, refused, malformed)
    │   └── ProviderTimeout              502 provider_error (Telnyx too slow)
    ├── RecordingFetchFailed             502 recording_fetch_failed (worker only; on the row)
    │   ├── RecordingLinkExpired         502 recording_fetch_failed (refresh the URL, resume)
    │   └── RecordingTooLarge            502 recording_fetch_failed (never retried)
    ├── ServiceUnavailable               503 service_unavailable
    │   └── CircuitOpen                  503 service_unavailable (provider breaker open)
    └── WorkerTimeout                    504 worker_timeout
"""

from __future__ import annotations

from typing import Any, ClassVar


class TelephonyError(Exception):
    """Base of every error the telephony service reports."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "Telephony failed unexpectedly."
    default_reason: ClassVar[str] = ""

    def __init__(
        self, message: str | None = None, *, reason: str = "", retry_after: float | None = None
    ) -> None:
        self.message = message or self.default_message
        self.reason = reason or self.default_reason or self.code
        self.retry_after = retry_after
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, reason={self.reason!r})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON/msgpack-safe form, for replies sent over the channel layer."""
        return {
            "type": type(self).__name__,
            "code": self.code,
            "reason": self.reason,
            "message": self.message,
            "retry_after": self.retry_after,
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> TelephonyError:
        """Rebuild an error sent by :meth:`to_dict` (unknown types become the base)."""
        cls = _REGISTRY.get(str(data.get("type")), TelephonyError)
        return cls(
            str(data.get("message") or cls.default_message),
            reason=str(data.get("reason") or ""),
            retry_after=data.get("retry_after"),
        )


class InvalidRequest(TelephonyError):
    """The request is malformed: the caller must change it, retrying will not help."""

    status = 400
    code = "invalid_request"
    default_message = "The request is not valid."


class InvalidNumber(InvalidRequest):
    """The destination is not a valid E.164 phone number."""

    code = "invalid_number"
    default_message = "The number is not a valid E.164 phone number."


class WebhookRejected(InvalidRequest):
    """A webhook we refuse; nothing of it is stored."""

    default_message = "The webhook is not valid."


class InvalidSignature(WebhookRejected):
    """Missing or wrong signature headers, or no key to check them with."""

    code = "invalid_signature"
    default_message = "The webhook signature is missing or does not verify."


class StaleTimestamp(WebhookRejected):
    """Correctly signed, but sent too long ago (or in the future): a possible replay."""

    code = "stale_timestamp"
    default_message = "The webhook timestamp is outside the accepted window."


class PayloadTooLarge(WebhookRejected):
    """The body is larger than any Telnyx call event."""

    status = 413
    default_message = "The webhook body is too large."


class NotAuthenticated(TelephonyError):
    """No logged-in user."""

    status = 401
    code = "not_authenticated"
    default_message = "Log in first."


class Forbidden(TelephonyError):
    """The user may not do this."""

    status = 403
    code = "forbidden"
    default_message = "You are not allowed to do this."


class DestinationNotAllowed(Forbidden):
    """The number is valid but its country or type is not allowed (premium rate ...)."""

    code = "destination_not_allowed"
    default_message = "Calls to this destination are not allowed."


class NotFound(TelephonyError):
    """No such object for this user (another user's call is also "not found")."""

    status = 404
    code = "not_found"
    default_message = "Not found."


class NoCredential(TelephonyError):
    """A call needs the agent's WebRTC login: the agent leg rings that credential."""

    status = 409
    code = "no_credential"
    default_message = "Log in to calling first: there is no telephony credential for you."


class SeatLimit(TelephonyError):
    """Every telephony seat the account allows is held by an agent who is online (or left
    too recently to free it): the user must wait for a seat, nothing is wrong."""

    status = 409
    code = "seat_limit"
    default_message = (
        "All telephony seats are in use by agents who are online. "
        "Try again when one of them leaves."
    )


class CallNotAnswered(TelephonyError):
    """Recording is started or stopped only while the customer is on the line."""

    status = 409
    code = "call_not_answered"
    default_message = "The call is not answered: recording needs a call in progress."


class RecordingDisabled(TelephonyError):
    """The agent may toggle recording only under ``TELEPHONY_RECORDING=on_demand``."""

    status = 409
    code = "recording_disabled"
    default_message = "Recording cannot be switched on or off here (TELEPHONY_RECORDING)."


class RateLimited(TelephonyError):
    """Too many requests from this user; ``retry_after`` says when to come back."""

    status = 429
    code = "rate_limited"
    default_message = "Too many requests; try again later."


class ProviderError(TelephonyError):
    """Telnyx answered with an error, or could not be reached."""

    status = 502
    code = "provider_error"
    default_message = "The telephony provider failed."


class ProviderRejected(ProviderError):
    """Telnyx refused the request (4xx other than 429)."""

    default_reason = "provider_rejected"


class CredentialLimitReached(ProviderRejected):
    """The account's telephony-credential limit is reached."""

    default_reason = "credential_limit"
    default_message = "The telephony account's credential limit is reached."


class ProviderRateLimited(ProviderError):
    """Telnyx answered 429."""

    default_reason = "provider_rate_limited"
    default_message = "The telephony provider is rate limiting us."


class ProviderUnavailable(ProviderError):
    """Telnyx answered 5xx, refused the connection, or sent a malformed body."""

    default_reason = "provider_unavailable"
    default_message = "The telephony provider is unavailable."


class ProviderTimeout(ProviderError):
    """Telnyx did not answer in the time the request's deadline left."""

    default_reason = "provider_timeout"
    default_message = "The telephony provider did not answer in time."


class RecordingFetchFailed(TelephonyError):
    """A worker could not bring a recording's file into our storage; ``reason`` says why
    (``size_mismatch``, ``checksum_mismatch``, ``bad_range``, ``http_503``, ``storage_error``
    ...) and becomes the row's ``error_code``. Messages never carry the download URL."""

    status = 502
    code = "recording_fetch_failed"
    default_message = "The recording could not be downloaded."
    permanent: ClassVar[bool] = False  # True: retrying cannot help, the row is failed


class RecordingLinkExpired(RecordingFetchFailed):
    """The download URL answered 403, 404 or 410 (Telnyx's links live 10 minutes)."""

    default_reason = "url_expired"
    default_message = "The recording's download link has expired."


class RecordingTooLarge(RecordingFetchFailed):
    """The file is larger than ``TELEPHONY_RECORDING_MAX_BYTES``."""

    default_reason = "too_large"
    default_message = "The recording is larger than TELEPHONY_RECORDING_MAX_BYTES."
    permanent = True


class ServiceUnavailable(TelephonyError):
    """The telephony service cannot take requests now (no worker, Redis down, failed)."""

    status = 503
    code = "service_unavailable"
    default_message = "Calling is unavailable right now."

    def __init__(
        self, message: str | None = None, *, reason: str = "", retry_after: float | None = 5.0
    ) -> None:
        super().__init__(message, reason=reason, retry_after=retry_after)


class CircuitOpen(ServiceUnavailable):
    """The provider circuit breaker is open: Telnyx is failing, we are not hammering it."""

    default_reason = "circuit_open"
    default_message = "The telephony provider is failing; calls are paused."


class WorkerTimeout(TelephonyError):
    """No worker answered before the request's deadline."""

    status = 504
    code = "worker_timeout"
    default_message = "The telephony service did not answer in time."


_REGISTRY: dict[str, type[TelephonyError]] = {
    cls.__name__: cls
    for cls in (
        TelephonyError,
        InvalidRequest,
        InvalidNumber,
        WebhookRejected,
        InvalidSignature,
        StaleTimestamp,
        PayloadTooLarge,
        NotAuthenticated,
        Forbidden,
        DestinationNotAllowed,
        NotFound,
        NoCredential,
        SeatLimit,
        CallNotAnswered,
        RecordingDisabled,
        RateLimited,
        ProviderError,
        ProviderRejected,
        CredentialLimitReached,
        ProviderRateLimited,
        ProviderUnavailable,
        ProviderTimeout,
        RecordingFetchFailed,
        RecordingLinkExpired,
        RecordingTooLarge,
        ServiceUnavailable,
        CircuitOpen,
        WorkerTimeout,
    )
}
