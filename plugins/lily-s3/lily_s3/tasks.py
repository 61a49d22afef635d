"""Tasks: store inbound MMS photos, and delete photos past their tenant's retention period."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from lily_host import (
    QUOTE_PHOTOS_RECEIVED,
    LilyHost,
    PermanentError,
    RetryLater,
    RetryPolicy,
    TaskContext,
    TaskHandler,
    Tenant,
    deleted_tenant,
    erase_tracked,
    mask_phone,
    note_effect,
)
from lily_s3.errors import StorageUnavailable
from lily_s3.keys import photo_id_of, photo_key, relative_to
from lily_s3.media import MediaFetcher, MediaRejected, MediaUnavailable
from lily_s3.quotes import Photo, QuoteStore, records_prefix
from lily_s3.settings import PLUGIN_NAME, S3Settings, S3TenantSettings, TenantSettingsError, tenant_settings
from lily_s3.storage import S3Bucket

STORE_INBOUND_MEDIA = "s3.store_inbound_media"
RETENTION_SWEEP = "s3.retention_sweep"
RETENTION_SWEEP_TENANT = "s3.retention_sweep_tenant"
ERASE_TENANT = "s3.erase_tenant"

_MESSAGE_SID = re.compile(r"[A-Za-z0-9]{1,64}")
_E164 = re.compile(r"\+[1-9]\d{6,14}")
#: Photo records read (and objects deleted) per round of a tenant's sweep, to bound memory.
RETENTION_BATCH = 500


def _record_patterns(tenant: str) -> tuple[str, ...]:
    """The tenant's record keys: the two indexes by name, the rest through its key registry."""
    prefix = records_prefix(tenant)
    return (prefix + "quotes", prefix + "photos", prefix + "*")


def retention_dedupe_key(when: float, interval: int) -> str:
    """One sweep per interval: a restart does not queue a second one while one is waiting.

    The queue holds a dedupe key only while its task is due or in flight, so the sweep's own
    follow-up (one interval later, hence the next bucket) never collides with the running sweep.
    """
    return f"s3:retention:{int(when // interval)}"


async def schedule_retention(host: LilyHost, *, run_at: float, interval: int) -> None:
    await host.schedule(
        RETENTION_SWEEP, {}, tenant=None, run_at=run_at, dedupe_key=retention_dedupe_key(run_at, interval)
    )


class S3Tasks:
    """The task handlers, sharing one bucket client. ``settings`` is None while S3 is not configured."""

    def __init__(self, settings: S3Settings | None) -> None:
        self.settings = settings
        self.bucket = S3Bucket(settings) if settings is not None else None

    def handlers(self) -> list[TaskHandler]:
        return [
            TaskHandler(STORE_INBOUND_MEDIA, self.store_inbound_media, retry=RetryPolicy(max_attempts=6)),
            TaskHandler(RETENTION_SWEEP, self.retention_sweep, retry=RetryPolicy(max_attempts=3)),
            TaskHandler(RETENTION_SWEEP_TENANT, self.retention_sweep_tenant, retry=RetryPolicy(max_attempts=5)),
            TaskHandler(ERASE_TENANT, self.erase_tenant, retry=RetryPolicy(max_attempts=8)),
        ]

    def _require(self) -> tuple[S3Settings, S3Bucket]:
        if self.settings is None or self.bucket is None:
            raise PermanentError("lily-s3 is not configured: set S3_BUCKET_NAME", code="not_configured")
        return self.settings, self.bucket

    async def _tenant(self, ctx: TaskContext) -> Tenant | None:
        if ctx.tenant_id is None:
            raise PermanentError(f"{ctx.task_type} needs a tenant", code="no_tenant")
        tenant = ctx.tenant
        if tenant is None:
            ctx.log.warning("tenant no longer exists; nothing to do")
        return tenant

    # --- a deleted tenant -----------------------------------------------------------------------------

    async def erase_tenant(self, ctx: TaskContext, payload: dict[str, Any]) -> None:
        """``tenant.deleted``: delete every object under the tenant's prefix, then its photo records.

        The tenant is gone, so its prefix comes from the settings the event carries. Objects first:
        a failure leaves the records that say what is still stored, and the retry starts again.
        """
        tenant_id = await deleted_tenant(ctx, payload)
        if tenant_id is None:
            return
        plugins = payload.get("plugins") if isinstance(payload.get("plugins"), dict) else {}
        try:
            rules = S3TenantSettings.model_validate(plugins.get(PLUGIN_NAME) or {})
        except ValidationError as error:
            raise PermanentError(
                f"tenant.deleted carries invalid s3 settings: {error}", code="invalid_event"
            ) from error
        prefix = rules.prefix_for(tenant_id)
        if self.bucket is None:
            records = await erase_tracked(ctx.host.redis, _record_patterns, tenant_id)
            if records:
                raise PermanentError(
                    f"lily-s3 is not configured (S3_BUCKET_NAME): objects under {prefix!r} were not deleted; "
                    "configure it and retry this task",
                    code="not_configured",
                )
            return
        objects = await self.bucket.list(prefix)
        await self.bucket.delete_many([item.key for item in objects])
        records = await erase_tracked(ctx.host.redis, _record_patterns, tenant_id)
        ctx.log.info("tenant photos erased", objects=len(objects), records=records, prefix=prefix)

    # --- inbound MMS ---------------------------------------------------------------------------------

    async def store_inbound_media(self, ctx: TaskContext, payload: dict[str, Any]) -> None:
        """Download each media item of a ``message.received`` event into the tenant's prefix."""
        media = payload.get("media") or []
        if not media:
            return
        settings, bucket = self._require()
        tenant = await self._tenant(ctx)
        if tenant is None:
            return
        customer = payload.get("from")
        message_sid = payload.get("message_sid")
        if not isinstance(customer, str) or not _E164.fullmatch(customer):
            raise PermanentError("message.received without an E.164 'from'", code="invalid_event")
        if not isinstance(message_sid, str) or not _MESSAGE_SID.fullmatch(message_sid):
            raise PermanentError("message.received without a valid 'message_sid'", code="invalid_event")
        if not isinstance(media, list):
            raise PermanentError("message.received 'media' is not a list", code="invalid_event")
        try:
            rules = tenant_settings(tenant)
        except TenantSettingsError as error:
            raise PermanentError(str(error), code="tenant_settings") from error

        store = QuoteStore(ctx.host.redis, tenant.id, ctx.host.pii)
        quote_id = await store.quote_for_message(
            customer, message_sid, now=ctx.now(), open_seconds=rules.quote_open_hours * 3600
        )
        log = ctx.log.bind(quote_id=quote_id, message_sid=message_sid, customer=mask_phone(customer))
        if ctx.attempt == 1:
            # The host's conversation inbox links the customer's texts to this quote.
            await ctx.host.emit(
                QUOTE_PHOTOS_RECEIVED,
                {"quote_id": quote_id, "message_sid": message_sid, "from": customer},
                tenant=tenant.id,
            )
        fetcher = MediaFetcher(
            credentials=settings.twilio_credentials,
            credential_hosts=settings.media_credential_hosts,
            timeout=settings.s3_media_timeout_seconds,
        )
        prefix = rules.prefix_for(tenant.id)
        if len(media) > settings.s3_media_max_items:
            log.warning("message carries more media than allowed; extra items skipped", count=len(media))
        unavailable: list[MediaUnavailable] = []
        for index, item in enumerate(media[: settings.s3_media_max_items]):
            photo_id = f"{message_sid}-{index}"
            if await store.get_photo(quote_id, photo_id) is not None:
                continue  # stored by an earlier attempt of this task
            url = item.get("url") if isinstance(item, dict) else None
            if not isinstance(url, str):
                log.warning("media item without a URL skipped", index=index)
                continue
            declared = item.get("content_type") if isinstance(item.get("content_type"), str) else None
            try:
                fetched = await fetcher.fetch(
                    url, max_bytes=rules.max_photo_bytes, allowed_types=rules.allowed_types, declared_type=declared
                )
            except MediaRejected as error:
                log.warning("media item rejected", index=index, reason=str(error))
                continue
            except MediaUnavailable as error:
                log.warning("media item not downloadable yet", index=index, reason=str(error))
                unavailable.append(error)
                continue
            relative = photo_key(quote_id, photo_id, fetched.content_type)
            stored = await bucket.put(
                prefix + relative,
                fetched.data,
                fetched.content_type,
                metadata={"lily-quote": quote_id, "lily-source": "mms"},
            )
            await store.add_photo(
                Photo(
                    photo_id=photo_id,
                    quote_id=quote_id,
                    key=stored.key,
                    content_type=stored.content_type,
                    size=stored.size,
                    stored_at=ctx.now(),
                    source="mms",
                    message_sid=message_sid,
                    delivery=ctx.delivery,
                ),
                customer=customer,
            )
            await note_effect(ctx.host, "photo", stored.key, {"tenant": ctx.tenant_id, "quote_id": quote_id})
            log.info("mms photo stored", index=index, size=stored.size)
        if unavailable:
            waits = [error.retry_after for error in unavailable if error.retry_after is not None]
            if waits:
                raise RetryLater(f"{len(unavailable)} media item(s) not downloadable yet", seconds=max(waits))
            raise StorageUnavailable(f"{len(unavailable)} media item(s) not downloadable yet: {unavailable[0]}")

    # --- retention ------------------------------------------------------------------------------------

    async def retention_sweep(self, ctx: TaskContext, payload: dict[str, Any]) -> None:
        """Fan out one sweep per tenant, then come back after the interval."""
        if self.settings is None:
            ctx.log.warning("lily-s3 is no longer configured; the retention chain stops")
            return
        settings = self.settings
        now = ctx.now()
        interval = settings.s3_retention_interval_seconds
        sweep_key = retention_dedupe_key(now, interval)
        for tenant in await ctx.host.tenants.all():
            await ctx.schedule(RETENTION_SWEEP_TENANT, {}, tenant=tenant.id, dedupe_key=f"{sweep_key}:{tenant.id}")
        await schedule_retention(ctx.host, run_at=now + interval, interval=interval)

    async def retention_sweep_tenant(self, ctx: TaskContext, payload: dict[str, Any]) -> None:
        """Delete the tenant's photos (recorded or not) older than its retention period."""
        _settings, bucket = self._require()
        tenant = await self._tenant(ctx)
        if tenant is None:
            return
        try:
            rules = tenant_settings(tenant)
        except TenantSettingsError as error:
            raise PermanentError(str(error), code="tenant_settings") from error
        days = rules.retention_days_for(tenant)
        cutoff = ctx.now() - days * 86400
        store = QuoteStore(ctx.host.redis, tenant.id, ctx.host.pii)
        prefix = rules.prefix_for(tenant.id)

        recorded = 0
        while True:
            pairs = await store.photos_stored_before(cutoff, limit=RETENTION_BATCH)
            if not pairs:
                break
            keys = []
            for quote_id, photo_id in pairs:
                photo = await store.get_photo(quote_id, photo_id)
                if photo is not None:
                    keys.append(photo.key)
            # Objects before records: a crash in between leaves records the next sweep retries, whereas
            # the other order could forget an object that is still stored.
            await bucket.delete_many(keys)
            await store.remove_photos(pairs)
            recorded += len(pairs)

        # Objects nobody recorded (an upload never completed, a rejected oversize upload) age out too.
        # Recorded photos are judged by their record alone (host clock), so they are skipped here.
        stale = []
        for item in await bucket.list(prefix):
            if item.last_modified >= cutoff:
                continue
            relative = relative_to(prefix, item.key)
            if relative is not None and await self._is_recorded(store, relative):
                continue
            stale.append(item.key)
        await bucket.delete_many(stale)
        if recorded or stale:
            ctx.log.info("retention removed photos", retention_days=days, recorded=recorded, unrecorded=len(stale))

    @staticmethod
    async def _is_recorded(store: QuoteStore, relative_key: str) -> bool:
        photo_id = photo_id_of(relative_key)
        if photo_id is None:
            return False
        return await store.get_photo(relative_key.split("/")[1], photo_id) is not None
