"""The webhook log: every delivery — accepted, duplicate or rejected — with replay.

One Redis stream per tenant, ``lily:webhooks:log:<tenant>`` (``lily:webhooks:log:_`` for deliveries
no tenant could be named for: bad signatures, unknown numbers, malformed bodies). Each XADD trims
its stream by age — the tenant's ``retention_days`` (``LILY_WEBHOOK_LOG_DAYS`` for the unattributed
stream) — and by length, ``LILY_WEBHOOK_LOG_MAX_ENTRIES`` per stream, so the log bounds itself
without a sweeper (the age trim runs with at most one append per stream every 10 s and process). A
tenant's stream is erased with the tenant.

An entry holds: id (the delivery id, :mod:`lily_host.operations.correlation`), time, integration, method, path,
the endpoint's route and path parameters, tenant (an unverified delivery is logged in the
unattributed stream, the tenant it named as ``claimed_tenant``), outcome, HTTP status, latency, the provider's
delivery id, the tasks it created, why it was refused, whether its signature was verified, the
headers and the body — values under secret-looking names redacted (see :func:`redact_body`) — and,
for a replay, the id of the delivery it replays.

``LILY_WEBHOOK_LOG=false`` turns the log off (the bench prints what it costs).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import orjson
from redis.exceptions import NoScriptError

from lily_host.observability.log import get_logger
from lily_host.operations.correlation import NO_TENANT, new_delivery_id, parse_delivery_id, ref_key
from lily_host.operations.webhook_index import index_args
from lily_host.plugin_api.key_slots import is_cluster_client
from lily_host.plugin_api.redis_typing import awaited

if TYPE_CHECKING:
    from lily_host.config.host_settings import HostSettings

PREFIX = "lily:webhooks:log:"
#: SET of the stream keys that exist (to list across tenants without SCAN).
STREAMS = "lily:webhooks:logs"
#: Seconds between two trims by age of one stream (per process); the length cap applies on every append.
TRIM_SECONDS = 10.0
#: How far after its id's time an entry may have been written (a slow handler): the search window.
WRITE_WINDOW_MS = 15 * 60 * 1000
_SECRET_WORDS = ("token", "secret", "password", "authorization", "api_key", "apikey", "signature", "cookie")
REDACTED = "[redacted]"


log = get_logger("lily.webhooks")
#: Entries are encoded on the request path of every webhook: orjson, ~15x the stdlib encoder here.
_ENCODE_OPTIONS = orjson.OPT_NON_STR_KEYS


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str, option=_ENCODE_OPTIONS).decode()


# One run appends every entry of a loop turn. Each entry's keys (K): the stream, the set of streams,
# the console's summary stream, its stream of failures (or ''), its per-minute counts, then
# provider-id reference keys. Its arguments (A): max entries, min id (ms), reference ttl, record
# id, the entry (JSON), then the console's
# summary (JSON), its min id ('' between two trims by age), max entries of the summaries and of the
# failures, minute field, minute ttl (set with the minute's first count).
_APPEND = """
local function append(K, A)
  redis.call('XADD', K[1], 'MAXLEN', '~', A[1], '*', 'id', A[4], 'r', A[5])
  if A[2] ~= '' then redis.call('XTRIM', K[1], 'MINID', A[2]) end
  if K[2] ~= '' then redis.call('SADD', K[2], K[1]) end
  redis.call('XADD', K[3], 'MAXLEN', '~', A[8], '*', 's', A[6])
  if A[7] ~= '' then redis.call('XTRIM', K[3], 'MINID', '~', A[7]) end
  if K[4] ~= '' then
    redis.call('XADD', K[4], 'MAXLEN', '~', A[9], '*', 's', A[6])
    if A[7] ~= '' then redis.call('XTRIM', K[4], 'MINID', '~', A[7]) end
  end
  if redis.call('HINCRBY', K[5], A[10], 1) == 1 then redis.call('EXPIRE', K[5], tonumber(A[11])) end
  for i = 6, #K do redis.call('SET', K[i], A[4], 'EX', tonumber(A[3])) end
end
-- ARGV[1]: how many entries; then, for each, its key count, its argument count and its arguments.
local ki, ai = 1, 2
for _ = 1, tonumber(ARGV[1]) do
  local nk, na = tonumber(ARGV[ai]), tonumber(ARGV[ai + 1])
  ai = ai + 2
  local K, A = {}, {}
  for i = 1, nk do K[i] = KEYS[ki]; ki = ki + 1 end
  for i = 1, na do A[i] = ARGV[ai]; ai = ai + 1 end
  append(K, A)
end
return 1
"""


# A per-minute count (one key): HINCRBY, and the expiry with the minute's first count.
_COUNT = """
if redis.call('HINCRBY', KEYS[1], ARGV[1], 1) == 1 then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2])) end
return 1
"""


class _Appender:
    """Log appends travel with the queue's group commit, and nobody waits for them.

    The appends of one event-loop turn are one atomic script run (for each entry: XADD with MAXLEN ~,
    XTRIM MINID, the index writes), packed and handed to the queue's
    :class:`~lily_host.queue.group_commit.ScriptBatcher`: it goes out in the same write as the
    schedule calls of the next batch, and its reply is read and dropped. The answer to the provider
    never depends on the log; a failed append is logged (and one the server refused for a lost
    script is sent again once the script is loaded).
    """

    def __init__(self, redis: Any, queue: Any) -> None:
        self._redis = redis
        self._queue = queue
        self._script = redis.register_script(_APPEND)
        self._sha = self._script.sha.encode()
        self._retry: set[asyncio.Task[None]] = set()
        self._keys: list[str] = []
        self._args: list[str] = []
        self._count = 0
        # On a Redis Cluster an entry's keys are in several slots (the tenant's stream, the console's
        # cross-tenant index, provider-id references): no one script may write them.
        self._cluster = is_cluster_client(redis)
        self._entries: list[tuple[list[str], list[str]]] = []
        self._count_script = redis.register_script(_COUNT) if self._cluster else None
        self._count_loaded = False

    def submit(self, keys: list[str], args: list[str]) -> None:
        if not self._count:
            asyncio.get_running_loop().call_soon(self._flush)
        self._count += 1
        if self._cluster:
            self._entries.append((keys, args))
            return
        self._keys += keys
        self._args += (str(len(keys)), str(len(args)), *args)

    def _flush(self) -> None:
        if not self._count:
            return
        if self._cluster:
            entries, self._entries, self._count = self._entries, [], 0
            task = asyncio.get_running_loop().create_task(self._write_cluster(entries))
            self._retry.add(task)
            task.add_done_callback(self._retry.discard)
            return
        keys, args = self._keys, [str(self._count), *self._args]
        self._keys, self._args, self._count = [], [], 0

        def failed(error: Exception) -> None:
            if isinstance(error, NoScriptError):
                task = asyncio.get_running_loop().create_task(self._again(keys, args))
                self._retry.add(task)
                task.add_done_callback(self._retry.discard)
            else:
                log.warning("webhook log entries not written", error=repr(error))

        self._queue.send_along(self._sha, keys, args, failed)

    async def _again(self, keys: list[str], args: list[str]) -> None:
        try:
            await self._script(keys=keys, args=args)  # redis-py loads the script and runs it
        except Exception as error:
            log.warning("webhook log entries not written", error=repr(error))

    async def _write_cluster(self, entries: list[tuple[list[str], list[str]]]) -> None:
        """The appends of one loop turn on a Redis Cluster: the script's writes as one-key commands
        (the count's conditional expiry a one-key script), in one cluster pipeline, which sends
        each primary its commands in one write. Each entry's writes are no longer one atomic step:
        a reader may see an entry in the tenant's stream a moment before the console's index."""
        try:
            await self._send_cluster(entries)
        except Exception as error:
            log.warning("webhook log entries not written", error=repr(error))

    async def _send_cluster(self, entries: list[tuple[list[str], list[str]]]) -> None:
        assert self._count_script is not None
        if not self._count_loaded:
            await self._redis.script_load(_COUNT)  # on every primary
            self._count_loaded = True
        pipe = self._redis.pipeline(transaction=False)
        for K, A in entries:  # the names of the script's KEYS and ARGV
            pipe.xadd(K[0], {"id": A[3], "r": A[4]}, maxlen=int(A[0]), approximate=True)
            if A[1]:
                pipe.xtrim(K[0], minid=A[1], approximate=False)
            if K[1]:
                pipe.sadd(K[1], K[0])
            for stream, cap in ((K[2], A[7]), (K[3], A[8])):
                if not stream:
                    continue
                pipe.xadd(stream, {"s": A[5]}, maxlen=int(cap), approximate=True)
                if A[6]:
                    pipe.xtrim(stream, minid=A[6], approximate=True)
            # execute_command: redis-py's cluster pipeline blocks its evalsha method, not the command.
            pipe.execute_command("EVALSHA", self._count_script.sha, 1, K[4], A[9], A[10])
            for ref in K[5:]:
                pipe.set(ref, A[3], ex=int(A[2]))
        results = await pipe.execute(raise_on_error=False)
        if any(isinstance(result, NoScriptError) for result in results):
            self._count_loaded = False  # lost by a restart: loaded again with the next appends
        failures = [result for result in results if isinstance(result, Exception)]
        if failures:
            log.warning("webhook log entries not written", error=repr(failures[0]))

    async def drain(self) -> None:
        self._flush()
        await self._queue.drain()
        while self._retry:
            await asyncio.gather(*self._retry, return_exceptions=True)


def stream_key(tenant: str | None) -> str:
    return PREFIX + (tenant or NO_TENANT)


#: Name as sent (a header, a JSON key, a form field) → (lower-cased, secret-looking). Providers send
#: the same few dozen names on every delivery; bounded, so a client inventing names cannot grow it
#: (past the bound: worked out per call).
_NAMES: dict[str, tuple[str, bool]] = {}
_NAMES_MAX = 4096


def _name(name: str) -> tuple[str, bool]:
    known = _NAMES.get(name)
    if known is None:
        lowered = name.lower()
        known = (lowered, _mentions_secret(lowered))
        if len(_NAMES) < _NAMES_MAX:
            _NAMES[name] = known
    return known


def _secret(name: str) -> bool:
    return _name(name)[1]


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    redacted = {}
    names = _NAMES
    for name, value in headers:
        lowered, secret = names.get(name) or _name(name)
        redacted[lowered] = REDACTED if secret else value
    return redacted


def _header_pairs(headers: Iterable[tuple[str, str]] | Mapping[str, str]) -> Iterable[tuple[str, str]]:
    """A request's header pairs as they came: ``RequestHeaders.pairs()`` (one pass, no look-up per
    name), a mapping's items, or the pairs given."""
    pairs = getattr(headers, "pairs", None)
    if callable(pairs):
        return pairs()  # type: ignore[no-any-return]
    if isinstance(headers, Mapping):
        return headers.items()
    return headers


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if isinstance(k, str) and _secret(k) else _redact_json(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_json(item) for item in value]
    return value


def _mentions_secret(lowered: str) -> bool:
    # _SECRET_WORDS spelt out: on every delivery's body, a third of the cost of a loop over them.
    return (
        "token" in lowered
        or "secret" in lowered
        or "password" in lowered
        or "authorization" in lowered
        or "api_key" in lowered
        or "apikey" in lowered
        or "signature" in lowered
        or "cookie" in lowered
    )


def redact_body(body: bytes, content_type: str) -> tuple[str, bool]:
    """The body as text with values under secret-looking names redacted; and whether any was.

    JSON and form bodies are parsed and re-encoded only when something is redacted (otherwise the
    bytes are kept as they came, so a replay sees the same body). Other bodies are kept as text.
    """
    text = body.decode("utf-8", "replace")
    lowered = text.lower()
    if not _mentions_secret(lowered):  # the common case: nothing to look for
        return text, False
    try:
        if content_type == "application/json":
            data = json.loads(text)
            redacted = _redact_json(data)
            if redacted != data:
                return json.dumps(redacted), True
        elif content_type == "application/x-www-form-urlencoded":
            pairs = parse_qsl(text, keep_blank_values=True)
            if any(_secret(name) for name, _ in pairs):
                return urlencode([(n, REDACTED if _secret(n) else v) for n, v in pairs]), True
    except (ValueError, RecursionError):
        pass
    return text, False


@dataclass(slots=True)
class Trail:
    """What the pipeline learnt about one delivery, filled in as it goes (for the log entry)."""

    route: str = ""
    params: dict[str, str] = field(default_factory=dict)
    record_id: str | None = None
    tenant: str | None = None
    retention_days: int | None = None
    provider_id: str | None = None
    verified: bool = False
    tasks: list[str] = field(default_factory=list)
    reason: str = ""
    body: bytes = b""
    content_type: str = ""
    query: str = ""
    replay_of: str | None = None


def _decode(entry_id: Any, fields: Mapping[bytes, bytes]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(fields.get(b"r", b"{}"))
    data["stream_id"] = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return data


def summary(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An entry without headers and body (listings)."""
    return {k: v for k, v in entry.items() if k not in ("headers", "body")}


class WebhookLog:
    def __init__(self, redis: Any, settings: HostSettings, queue: Any) -> None:
        """``queue``: the task queue, whose group commit carries the appends (``send_along``)."""
        self.redis = redis
        self.settings = settings
        self._appender = _Appender(redis, queue)
        self._known: set[str] = set()
        self._trimmed: dict[str, float] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.settings.webhook_log)

    def record(
        self,
        *,
        integration: str,
        method: str,
        path: str,
        headers: Iterable[tuple[str, str]] | Mapping[str, str],
        remote_addr: str | None,
        trail: Trail,
        outcome: str,
        status: int,
        latency: float,
    ) -> str:
        """Append one delivery (sent with the other appends of this loop turn); returns its id.

        Not awaited on the request path: the entry goes out in one pipeline with every other entry
        of the same event-loop turn (see :class:`_Appender`). Reads in this process wait for it.
        """
        now = time.time()
        # An unverified delivery is anyone's: it goes to the unattributed log (so forgeries naming a
        # tenant cannot push that tenant's real deliveries out) and indexes no provider id (so
        # they cannot hijack a trace). The tenant it named is kept as ``claimed_tenant``.
        tenant = trail.tenant if trail.verified else None
        record_id = trail.record_id
        if record_id is None:
            record_id = new_delivery_id(tenant, now)
        body, redacted = redact_body(trail.body[: self.settings.webhook_log_body_bytes], trail.content_type)
        entry = {
            "id": record_id,
            "at": now,
            "integration": integration,
            "method": method,
            "path": path,
            "query": trail.query,
            "route": trail.route,
            "params": trail.params,
            "tenant": tenant,
            "claimed_tenant": None if trail.verified else trail.tenant,
            "outcome": outcome,
            "status": status,
            "latency_ms": round(latency * 1000, 3),
            "provider_id": trail.provider_id,
            "tasks": trail.tasks,
            "reason": trail.reason[:500],
            "verified": trail.verified,
            "redacted": redacted,
            "remote_addr": remote_addr,
            "replay_of": trail.replay_of,
            "content_type": trail.content_type,
            "headers": redact_headers(_header_pairs(headers)),
            "body": body,
        }
        days = trail.retention_days if tenant and trail.retention_days else self.settings.webhook_log_days
        key = stream_key(tenant)
        # The set of streams needs each key once per process, not once per delivery; the trim by
        # age runs at most every TRIM_SECONDS per stream and process (the length cap on every append).
        keys = [key, "" if key in self._known else STREAMS]
        self._known.add(key)
        trimmed = self._trimmed.get(key, 0.0)
        trim_age = now - trimmed >= TRIM_SECONDS
        if trim_age:
            self._trimmed[key] = now
        # The console's cross-tenant summary and per-minute counts, in the same script run.
        index_keys, index_values = index_args(entry, now, self.settings.webhook_log_days, trim_by_age=trim_age)
        keys += index_keys
        trace_ttl = int(self.settings.trace_days * 86400)
        if trail.provider_id and trace_ttl > 0 and trail.verified:
            # "CA…:no-answer" is found by its CallSid: the id before a colon is the reference.
            keys.append(ref_key(trail.provider_id.partition(":")[0]))
        args = [
            str(self.settings.webhook_log_max_entries),
            str(int((now - days * 86400) * 1000)) if trim_age else "",
            str(max(trace_ttl, 1)),
            record_id,
            _json(entry),
            *index_values,
        ]
        self._appender.submit(keys, args)
        return record_id

    async def drain(self) -> None:
        """Wait until every entry this process appended is in Redis."""
        await self._appender.drain()

    # --- reading -----------------------------------------------------------------------------------

    async def get(self, record_id: str) -> dict[str, Any] | None:
        await self.drain()
        parsed = parse_delivery_id(record_id)
        if parsed is None:
            return None
        tenant, ms = parsed
        start, end = f"{ms - 1000}-0", f"{ms + WRITE_WINDOW_MS}-0"
        key = stream_key(tenant)
        while True:
            batch = await self.redis.xrange(key, start, end, count=500)
            for entry_id, fields in batch:
                if fields.get(b"id", b"").decode() == record_id:
                    return _decode(entry_id, fields)
            if len(batch) < 500:
                return None
            start = "(" + batch[-1][0].decode()

    async def streams(self, tenant: str | None = None) -> list[str]:
        if tenant is not None:
            return [stream_key(tenant)]
        return sorted(raw.decode() for raw in await awaited(self.redis.smembers(STREAMS)))

    async def list(
        self,
        *,
        tenant: str | None = None,
        integration: str | None = None,
        outcome: str | None = None,
        since: float | None = None,
        until: float | None = None,
        before: str | None = None,
        replay_of: str | None = None,
        limit: int = 50,
        scan_limit: int = 20000,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Entries newest first matching every filter given, and the cursor of the next page (or None).

        ``before`` is a cursor (a stream id) from a previous page; ``since``/``until`` are Unix times.
        Without a tenant every tenant's stream is read, all of them in one pipelined round trip
        per round: a few entries of each first, more of those that may still hold one of the
        newest ``limit`` matches, until no stream can. At most ``scan_limit`` entries are read in
        all, so a rare filter over a long log ends (with a cursor to go on from).
        """
        await self.drain()
        wanted = set(outcome.split(",")) if outcome else None
        # A cursor is "<stream id>~<record id>": entries of different streams may share a stream id
        # (one millisecond, one sequence), so the record id breaks the tie; each stream is read from
        # the cursor's stream id inclusive and what is not older than the cursor is skipped.
        # A bare "<stream id>" (the scan limit's cursor) is exclusive.
        below: tuple[int, int, str] | None = None
        if before:
            stream_id, _, record_id = before.partition("~")
            end = stream_id if record_id else "(" + stream_id
            below = (*_stream_order(stream_id), record_id) if record_id else None
        else:
            end = f"{int(until * 1000)}-99999999" if until else "+"
        start = f"{int(since * 1000)}-0" if since else "-"
        keys = await self.streams(tenant)
        cursors = dict.fromkeys(keys, end)
        matches: list[dict[str, Any]] = []
        scanned = 0
        oldest_read: tuple[int, int] | None = None
        count = max(2, min(500, -(-2 * (limit + 1) // max(1, len(keys)))))
        while cursors and scanned < scan_limit:
            active = list(cursors)
            pipe = self.redis.pipeline(transaction=False)
            for key in active:
                pipe.xrevrange(key, cursors[key], start, count=count)
            batches = await pipe.execute()
            for key, batch in zip(active, batches, strict=True):
                scanned += len(batch)
                for entry_id, fields in batch:
                    entry = _decode(entry_id, fields)
                    if below is not None and _entry_order(entry) >= below:
                        continue
                    if integration and entry["integration"] != integration:
                        continue
                    if wanted and entry["outcome"] not in wanted:
                        continue
                    if replay_of and entry["replay_of"] != replay_of:
                        continue
                    matches.append(entry)
                if len(batch) < count:
                    del cursors[key]  # read to its end
                else:
                    last = batch[-1][0].decode()
                    cursors[key] = "(" + last
                    order = _stream_order(last)
                    oldest_read = order if oldest_read is None or order < oldest_read else oldest_read
            if len(matches) >= limit:
                matches.sort(key=_entry_order, reverse=True)
                bar = _stream_order(matches[limit - 1]["stream_id"])
                # What is left of a stream is older than its cursor: only streams whose cursor is
                # newer than the limit-th match may still hold one of the newest matches.
                cursors = {k: c for k, c in cursors.items() if _stream_order(c.lstrip("(")) >= bar}
            count = min(500, count * 4)
        matches.sort(key=_entry_order, reverse=True)
        page = matches[:limit]
        if len(matches) > limit or (cursors and page):
            return page, f"{page[-1]['stream_id']}~{page[-1]['id']}"
        if cursors and not page and oldest_read is not None:
            # The scan limit ended the search before any match: go on from where it stopped.
            return page, f"{oldest_read[0]}-{oldest_read[1]}"
        return page, None

    async def erase(self, tenant: str) -> int:
        key = stream_key(tenant)
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(key)
        pipe.srem(STREAMS, key)
        removed, _ = await pipe.execute()
        return int(removed)


def _entry_order(entry: Mapping[str, Any]) -> tuple[int, int, str]:
    """Newest-first order across streams: the stream id, then the record id for a tie."""
    return (*_stream_order(entry["stream_id"]), str(entry["id"]))


def _stream_order(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)
