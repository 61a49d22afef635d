"""The tenant API: presigned browser uploads, completing them, and expiring links to a quote's photos.

Every key handed out or accepted is checked against the caller's own prefix; nothing here ever
signs a URL for a key outside it.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from quart import Blueprint, g, jsonify, request
from quart.typing import ResponseReturnValue

from lily_host import Tenant, UntrustedInput, ascii_int, current_host, get_logger, loads_json, require_tenant
from lily_s3.errors import StorageRejected, StorageThrottled, StorageUnavailable
from lily_s3.keys import QUOTE_ID, join, new_photo_id, new_quote_id, photo_id_of, photo_key, relative_to
from lily_s3.quotes import PendingUpload, Photo, QuoteStore
from lily_s3.settings import (
    S3Settings,
    S3TenantSettings,
    TenantSettingsError,
    normalize_content_type,
    tenant_settings,
)
from lily_s3.storage import S3Bucket

log = get_logger("lily.s3")

#: A pending upload is remembered this long after its form expires (slow connections finish late).
PENDING_GRACE_SECONDS = 24 * 3600
MAX_FILENAME_CHARS = 200
MAX_QUOTES_LISTED = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _error(status: int, error: str, message: str, **extra: Any) -> ResponseReturnValue:
    return jsonify({"error": error, "message": message, **extra}), status


def _clean_filename(value: str) -> str | None:
    """The customer's file name for display only (never part of a key): no path, no control chars."""
    name = unicodedata.normalize("NFC", value).replace("\\", "/").rsplit("/", 1)[-1]
    name = _CONTROL.sub("", name).strip()
    return name[:MAX_FILENAME_CHARS] or None


async def _json_object() -> dict[str, Any] | None:
    try:
        body = loads_json(await request.get_data(as_text=False))
    except UntrustedInput:  # malformed, too deep, not UTF-8: the same 400 as any non-object
        return None
    return body if isinstance(body, dict) else None


def _photo_view(photo: Photo) -> dict[str, Any]:
    return {
        "photo_id": photo.photo_id,
        "quote_id": photo.quote_id,
        "key": photo.key,
        "content_type": photo.content_type,
        "size": photo.size,
        "filename": photo.filename,
        "source": photo.source,
        "stored_at": photo.stored_at,
    }


def make_blueprint(settings: S3Settings | None) -> Blueprint:
    blueprint = Blueprint("s3", __name__)
    bucket = S3Bucket(settings) if settings is not None else None

    def current() -> tuple[S3Settings, S3Bucket, Tenant, S3TenantSettings]:
        if settings is None or bucket is None:  # the host answers 503 first; this keeps types honest
            raise StorageUnavailable("lily-s3 is not configured: set S3_BUCKET_NAME")
        tenant: Tenant = g.tenant
        return settings, bucket, tenant, tenant_settings(tenant)

    @blueprint.errorhandler(TenantSettingsError)
    async def bad_tenant_settings(error: TenantSettingsError) -> ResponseReturnValue:
        return _error(409, "tenant_settings", str(error))

    @blueprint.errorhandler(StorageRejected)
    async def storage_rejected(error: StorageRejected) -> ResponseReturnValue:
        log.error("S3 refused a request", operation=error.operation, code=error.s3_code, reason=error.reason)
        return _error(502, "storage_error", f"photo storage refused the request ({error.s3_code}); see /health")

    @blueprint.errorhandler(StorageUnavailable)
    async def storage_unavailable(error: StorageUnavailable) -> ResponseReturnValue:
        log.warning("S3 unavailable", reason=str(error))
        return _error(503, "storage_unavailable", "photo storage is unavailable; try again shortly")

    @blueprint.errorhandler(StorageThrottled)
    async def storage_throttled(error: StorageThrottled) -> ResponseReturnValue:
        response = jsonify({"error": "storage_busy", "message": "photo storage is busy; try again shortly"})
        response.status_code = 503
        response.headers["Retry-After"] = str(int(error.seconds))
        return response

    @blueprint.post("/uploads")
    @require_tenant
    async def create_upload() -> ResponseReturnValue:
        settings, bucket, tenant, rules = current()
        body = await _json_object()
        if body is None:
            return _error(
                400, "invalid_body", 'send a JSON object: {"content_type": "image/jpeg", "filename"?, "quote_id"?}'
            )
        content_type = body.get("content_type")
        if not isinstance(content_type, str) or not content_type.strip():
            return _error(
                400, "invalid_body", "content_type is required (e.g. image/jpeg)", allowed=rules.allowed_types
            )
        content_type = normalize_content_type(content_type)
        if not rules.allows(content_type):
            return _error(
                400,
                "unsupported_content_type",
                f"content_type {content_type} is not allowed; allowed: {', '.join(rules.allowed_types)}",
                allowed=rules.allowed_types,
            )
        filename = body.get("filename")
        if filename is not None and not isinstance(filename, str):
            return _error(400, "invalid_body", "filename must be a string")
        quote_id = body.get("quote_id")
        if quote_id is None:
            quote_id = new_quote_id()
        elif not isinstance(quote_id, str) or not QUOTE_ID.fullmatch(quote_id):
            return _error(400, "invalid_quote_id", "quote_id must be 1-64 letters, digits, '_' or '-'")

        photo_id = new_photo_id()
        key = join(rules.prefix_for(tenant.id), photo_key(quote_id, photo_id, content_type))
        expires = settings.s3_upload_expiry_seconds
        post = await bucket.presigned_post(
            key,
            content_type=content_type,
            max_bytes=rules.max_photo_bytes,
            expires=expires,
            metadata={"lily-quote": quote_id, "lily-source": "upload"},
        )
        host = current_host()
        now = host.clock.now()
        await QuoteStore(host.redis, tenant.id, host.pii).put_pending(
            PendingUpload(
                photo_id=photo_id,
                quote_id=quote_id,
                key=key,
                content_type=content_type,
                max_bytes=rules.max_photo_bytes,
                issued_at=now,
                filename=_clean_filename(filename) if filename else None,
            ),
            ttl=expires + PENDING_GRACE_SECONDS,
        )
        return jsonify(
            {
                "quote_id": quote_id,
                "photo_id": photo_id,
                "key": key,
                "content_type": content_type,
                "max_bytes": rules.max_photo_bytes,
                "expires_in": expires,
                "expires_at": now + expires,
                "upload": {"url": post["url"], "fields": post["fields"]},
            }
        ), 201

    @blueprint.post("/uploads/complete")
    @require_tenant
    async def complete_upload() -> ResponseReturnValue:
        _settings, bucket, tenant, rules = current()
        body = await _json_object()
        key = body.get("key") if body is not None else None
        if not isinstance(key, str) or not key:
            return _error(400, "invalid_body", 'send a JSON object: {"key": "<the key from POST /api/uploads>"}')
        prefix = rules.prefix_for(tenant.id)
        relative = relative_to(prefix, key)
        if relative is None:
            return _error(403, "forbidden_key", "that key is outside this tenant's storage prefix")
        photo_id = photo_id_of(relative)
        host = current_host()
        store = QuoteStore(host.redis, tenant.id, host.pii)
        if photo_id is None:
            return _error(
                404, "unknown_upload", "no upload was issued for that key; request one with POST /api/uploads"
            )
        quote_id = relative.split("/")[1]
        recorded = await store.get_photo(quote_id, photo_id)
        if recorded is not None and recorded.key == key:
            return jsonify({"quote_id": quote_id, "photo": _photo_view(recorded), "created": False}), 200
        pending = await store.get_pending(photo_id)
        if pending is None or pending.key != key:
            return _error(
                404, "unknown_upload", "no upload was issued for that key; request one with POST /api/uploads"
            )

        stored = await bucket.head(key)
        if stored is None:
            return _error(
                409, "not_uploaded", "nothing was uploaded to that key yet: POST the file with the form first"
            )
        if stored.size > rules.max_photo_bytes:
            return _error(
                413,
                "too_large",
                f"the uploaded object is {stored.size} bytes; the limit is {rules.max_photo_bytes}",
                max_bytes=rules.max_photo_bytes,
            )
        if stored.size == 0:
            return _error(400, "empty", "the uploaded object is empty")
        if stored.content_type != pending.content_type or not rules.allows(stored.content_type):
            return _error(
                415,
                "unsupported_content_type",
                f"the uploaded object is {stored.content_type}; expected {pending.content_type}",
                allowed=rules.allowed_types,
            )
        photo, created = await store.add_photo(
            Photo(
                photo_id=photo_id,
                quote_id=quote_id,
                key=key,
                content_type=stored.content_type,
                size=stored.size,
                stored_at=host.clock.now(),
                source="upload",
                filename=pending.filename,
            )
        )
        await store.drop_pending(photo_id)
        return jsonify({"quote_id": quote_id, "photo": _photo_view(photo), "created": created}), 201 if created else 200

    @blueprint.get("/quotes")
    @require_tenant
    async def list_quotes() -> ResponseReturnValue:
        _settings, _bucket, tenant, _rules = current()
        try:
            limit = ascii_int(request.args.get("limit", "50"), name="limit")
        except UntrustedInput:
            limit = None
        if limit is None or not 1 <= limit <= MAX_QUOTES_LISTED:
            return _error(400, "invalid_limit", f"limit must be 1..{MAX_QUOTES_LISTED}")
        quotes = await QuoteStore(current_host().redis, tenant.id, current_host().pii).recent_quotes(limit)
        return jsonify({"quotes": [quote.as_dict() for quote in quotes]})

    @blueprint.get("/quotes/<quote_id>/photos")
    @require_tenant
    async def quote_photos(quote_id: str) -> ResponseReturnValue:
        _settings, bucket, tenant, rules = current()
        raw_expires = request.args.get("expires_in")
        lifetime = rules.link_lifetime_seconds
        if raw_expires is not None:
            try:
                expires = ascii_int(raw_expires, name="expires_in")
            except UntrustedInput:
                expires = None
            if expires is None or not 1 <= expires <= rules.link_lifetime_seconds:
                return _error(400, "invalid_expires_in", f"expires_in must be 1..{rules.link_lifetime_seconds} seconds")
            lifetime = expires
        if not QUOTE_ID.fullmatch(quote_id):
            return _error(404, "unknown_quote", f"no quote {quote_id!r}")
        host = current_host()
        store = QuoteStore(host.redis, tenant.id, host.pii)
        quote = await store.get_quote(quote_id)
        if quote is None:
            return _error(404, "unknown_quote", f"no quote {quote_id!r}")
        prefix = rules.prefix_for(tenant.id)
        now = host.clock.now()
        photos = []
        for photo in await store.photos(quote_id):
            if relative_to(prefix, photo.key) is None:
                # Stored under a prefix the tenant has since changed: never sign outside the current one.
                log.warning("photo outside the tenant prefix not linked", tenant=tenant.id, photo_id=photo.photo_id)
                continue
            url = await bucket.presigned_get(photo.key, expires=lifetime)
            photos.append({**_photo_view(photo), "url": url})
        return jsonify(
            {
                "quote": quote.as_dict(),
                "expires_in": lifetime,
                "expires_at": now + lifetime,
                "photos": photos,
            }
        )

    return blueprint
