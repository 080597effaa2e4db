"""The ed25519 key the sandbox signs its webhooks with, as Telnyx does.

``telnyx-signature-ed25519`` is base64 of the ed25519 signature over
``f"{timestamp}|{body}"``; the public key is base64 of the raw 32-byte verify key, which
is what Telnyx's portal shows.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from nacl.signing import SigningKey


class Signer:
    """Holds the ed25519 key webhooks are signed with."""

    def __init__(self, key: SigningKey) -> None:
        self._key = key

    @classmethod
    def load_or_create(cls, path: Path | None) -> Signer:
        """Read a base64 32-byte seed from ``path``, creating it (mode 0600) when missing."""
        if path is None:
            return cls(SigningKey.generate())
        if path.exists():
            seed = base64.b64decode(path.read_text().strip(), validate=True)
            return cls(SigningKey(seed))
        key = SigningKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(base64.b64encode(bytes(key)).decode() + "\n")
        return cls(key)

    @property
    def public_key(self) -> str:
        """Base64 of the raw verify key (what ``TELNYX_PUBLIC_KEY`` holds)."""
        return base64.b64encode(bytes(self._key.verify_key)).decode()

    def sign(self, body: bytes, timestamp: str) -> str:
        """Base64 signature over ``timestamp|body``."""
        signed = self._key.sign(timestamp.encode() + b"|" + body)
        return base64.b64encode(signed.signature).decode()
