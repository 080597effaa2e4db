"""Put a finished spool file into ``storages["recordings"]`` and prove it arrived intact.

Synchronous (Django's storage API is): the worker runs it in a thread. Works with any
storage backend: it only uses ``exists``, ``delete``, ``save``, ``size`` and ``open``,
and streams both ways in chunks.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from django.core.files import File
from django.core.files.storage import Storage, storages

from telephony.exceptions import RecordingFetchFailed

logger = logging.getLogger(__name__)

READ_CHUNK = 1024 * 1024


def recordings_storage() -> Storage:
    return storages["recordings"]


def stored_sha256(storage: Storage, name: str) -> str:
    """The sha256 of a stored file, read back in chunks."""
    digest = hashlib.sha256()
    with storage.open(name, "rb") as fh:
        while block := fh.read(READ_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def store_verified(name: str, spool: Path, size: int, sha256: str) -> None:
    """Save ``spool`` as exactly ``name`` (replacing a leftover), then verify size and sha256.

    A leftover under ``name`` can only be an earlier attempt at this same recording (the
    name is the row's uuid) that died before marking the row: it is replaced, so there is
    never a second file. A verification failure deletes what was saved and raises.
    """
    storage = recordings_storage()
    try:
        if storage.exists(name):
            logger.info(
                "[Telephony Recordings] replacing the leftover %s of an earlier attempt", name
            )
            storage.delete(name)
        with spool.open("rb") as fh:
            saved = storage.save(name, File(fh, name=Path(name).name))
        if saved != name:  # the backend picked another name: someone saved meanwhile
            storage.delete(saved)
            raise RecordingFetchFailed("The storage renamed the file.", reason="storage_conflict")
        got_size, got_sha = storage.size(name), stored_sha256(storage, name)
    except RecordingFetchFailed:
        raise
    except Exception as e:  # a backend error: the message is the backend's, never the URL
        raise RecordingFetchFailed(
            f"The recordings storage failed ({type(e).__name__}).", reason="storage_error"
        ) from e
    if got_size != size or got_sha != sha256:
        storage.delete(name)
        raise RecordingFetchFailed(
            f"The stored copy differs ({got_size} of {size} bytes).", reason="checksum_mismatch"
        )
