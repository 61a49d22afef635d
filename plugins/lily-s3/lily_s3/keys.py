"""Object keys: the server chooses them, and every one stays inside its tenant's prefix."""

from __future__ import annotations

import re
import secrets

from lily_host import PermanentError

QUOTE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
PHOTO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,95}")
#: S3 keys are at most 1024 bytes of UTF-8.
MAX_KEY_BYTES = 1024

_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/heic": "heic",
    "image/heif": "heif",
    "image/webp": "webp",
    "image/gif": "gif",
    "image/tiff": "tiff",
    "image/avif": "avif",
    "application/pdf": "pdf",
}
# Characters that are safe in a key segment everywhere (URLs, consoles, shells, other SDKs).
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9!_.*'()-]+")


class InvalidKey(PermanentError):
    """A key that would escape the tenant's prefix or is not a plain relative key."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, code="invalid_key")


def new_quote_id() -> str:
    return f"q_{secrets.token_hex(8)}"


def new_photo_id() -> str:
    return f"p_{secrets.token_hex(12)}"


def extension_for(content_type: str) -> str:
    return _EXTENSIONS.get(content_type, "bin")


def photo_key(quote_id: str, photo_id: str, content_type: str) -> str:
    """The key of a photo relative to its tenant's prefix."""
    return f"quotes/{quote_id}/{photo_id}.{extension_for(content_type)}"


def photo_id_of(relative_key: str) -> str | None:
    """The photo id a key made by :func:`photo_key` carries, or None for any other key."""
    parts = relative_key.split("/")
    if len(parts) != 3 or parts[0] != "quotes" or not QUOTE_ID.fullmatch(parts[1]):
        return None
    photo_id = parts[2].rsplit(".", 1)[0]
    return photo_id if PHOTO_ID.fullmatch(photo_id) else None


def check_relative_key(key: str) -> str:
    """Refuse keys that are absolute, empty, or use '.'/'..' segments.

    S3 itself treats '..' literally, but proxies and S3-compatible servers (MinIO) normalise paths,
    where ``tenants/acme/../bob/x`` would land in another tenant's prefix.
    """
    if not key or key.startswith("/") or key.endswith("/"):
        raise InvalidKey(f"key {key!r} must be a non-empty relative key that does not end with '/'")
    for segment in key.split("/"):
        if segment in ("", ".", "..") or not _SAFE_SEGMENT.fullmatch(segment):
            raise InvalidKey(f"key {key!r} has an invalid segment {segment!r} (letters, digits and !_.*'()- only)")
    return key


def join(prefix: str, relative_key: str) -> str:
    """The full key of ``relative_key`` under ``prefix``."""
    full = prefix + check_relative_key(relative_key)
    if len(full.encode()) > MAX_KEY_BYTES:
        raise InvalidKey(f"key is longer than {MAX_KEY_BYTES} bytes")
    return full


def relative_to(prefix: str, full_key: str) -> str | None:
    """``full_key`` relative to ``prefix``, or None when it lies outside (or is not a plain key)."""
    if not full_key.startswith(prefix):
        return None
    relative = full_key[len(prefix) :]
    try:
        return check_relative_key(relative)
    except InvalidKey:
        return None
