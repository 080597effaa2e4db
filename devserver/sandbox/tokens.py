"""WebRTC access tokens: JWTs shaped like the ones ``/telephony_credentials/{id}/token`` returns.

Telnyx signs with HS512 and the claims of the spec's example (``aud``, ``iss``,
``sub``, ``tel_token``, ``typ``, ...). The sandbox does the same with its own secret,
by hand (the format is three base64url segments), so no JWT library is needed. Only the
sandbox can verify them; clients only read ``exp``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from datetime import datetime, timedelta

TOKEN_TTL = timedelta(hours=24)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint(*, secret: bytes, subject: str, now: datetime, expires_at: datetime | None) -> str:
    """A signed token valid for 24 hours, never past the credential's own expiry."""
    exp = now + TOKEN_TTL
    if expires_at is not None and expires_at < exp:
        exp = expires_at
    claims = {
        "aud": "telnyx_telephony",
        "exp": int(exp.timestamp()),
        "iat": int(now.timestamp()),
        "iss": "telnyx_telephony",
        "jti": str(uuid.uuid4()),
        "nbf": int(now.timestamp()) - 1,
        "sub": subject,
        "tel_token": _b64(secrets.token_bytes(48)),
        "typ": "access",
    }
    header = _b64(json.dumps({"alg": "HS512", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = _b64(hmac.new(secret, signing_input, hashlib.sha512).digest())
    return f"{header}.{payload}.{signature}"


def verify(token: str, *, secret: bytes) -> dict[str, object]:
    """The claims of a token this sandbox minted; ValueError if the signature is wrong."""
    header, payload, signature = token.split(".")
    expected = _b64(hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha512).digest())
    if not hmac.compare_digest(expected, signature):
        raise ValueError("bad token signature")
    padded = payload + "=" * (-len(payload) % 4)
    claims: dict[str, object] = json.loads(base64.urlsafe_b64decode(padded))
    return claims
