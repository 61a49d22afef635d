"""The queue's Lua scripts. Every state change of a task happens inside one of them, atomically.

Data model (all keys share the hash tag ``{q:NAME}`` so the scripts run on Redis Cluster too; every
key a script touches is passed in KEYS):

``due``       ZSET  task id -> due time (Unix seconds)
``inflight``  ZSET  task id -> lease expiry
``dead``      ZSET  task id -> time it was dead-lettered
``tasks``     HASH  record field -> the task record, one JSON string (see below)
``attempts``  HASH  task id -> runs started (incremented by claim, refunded by defer/release)
``owners``    HASH  task id -> "<lease token>|<due score>" while in flight; ack/extend/fail check it
``dedupe``    HASH  dedupe key -> task id, only for a task that could not take its key's own
                    record field (that field held a dead letter); older versions kept every key here
``counts``    HASH  "due|TYPE" / "inflight|TYPE" / "dead|TYPE" -> count, for O(types) depth metrics
``guard:*``   STRING  webhook idempotency guards (SET NX EX)

Task ids (public: ``lily tasks`` prints them) are ``"<type>:<body>"``; the scripts read the type
from the id, so keeping the per-type counters costs no JSON decoding on the hot path. The body says
where the record is (:func:`field_of`):

* ``<16 chars>`` (a task without a dedupe key) and ``<24 hex>`` (every task before the compact
  layout): the record field is the whole id.
* ``<key field>.<4 chars>`` (a task with a dedupe key): the field is the 12-character hash of the
  dedupe key, so that one hash entry is both the record and the dedupe index (a key's holder is
  found by reading its field); the 4 random characters tell successive tasks of one key apart.

Why: memory. A pending task costs a ZSET entry and one hash entry, as arq's deferred job costs a
ZSET entry and one key; a separate dedupe index entry per task cost more than arq's whole job.

A record is a JSON array ``[created, first_due, ref, tenant, payload, max_attempts, dedupe_key,
delivery, last_error, errors]`` (trailing absent values left out). ``ref`` is ``"<type>:<4 chars>"``
for a record stored in its dedupe key's field while that task holds the key (from it and the field
the holder's id is rebuilt), else ``0``. Records written before the compact layout are JSON objects
(``type``, ``tenant``, ``payload``, ...); every script and the Python side read both.

Time: ``ARGV[1]`` is "now" when the queue's clock is manual (tests), and empty otherwise, in which
case the script asks Redis ``TIME`` — so every due time and lease comes from one clock, the
server's, whatever the workers' clocks say. Scripts that call TIME and then write are fine since
Redis 5 replicates script effects, not scripts.

Numbers go back to Python as strings formatted with ``%.6f``: Lua numbers would be truncated to
integers by the reply conversion.
"""

from __future__ import annotations

_PRELUDE = r"""
local function now_from(arg)
  local n = tonumber(arg)
  if n then return n end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function type_of(id)
  return string.match(id, '^(.*):') or ''
end
local function fmt(x)
  return string.format('%.6f', x)
end
local function tally_add(tally, field, delta)
  tally[field] = (tally[field] or 0) + delta
end
local function tally_flush(counts, tally)
  for field, delta in pairs(tally) do
    if delta ~= 0 then redis.call('HINCRBY', counts, field, delta) end
  end
end
local function head_score(zset)
  local h = redis.call('ZRANGE', zset, 0, 0, 'WITHSCORES')
  if h[2] then return tonumber(h[2]) end
  return nil
end
local function owns(owners, id, token)
  local owner = redis.call('HGET', owners, id)
  return owner and string.sub(owner, 1, #token + 1) == token .. '|'
end
local function pending(due, inflight, id)
  return redis.call('ZSCORE', due, id) or redis.call('ZSCORE', inflight, id)
end
-- The tasks-hash field of a task id (see the module docstring). Only a keyed task's id has a '.'
-- five characters from its end (the hot path for other ids is one byte test).
local function field_of(id)
  if string.byte(id, -5) ~= 46 then return id end
  return string.match(id, ':([^:]*)%.[^:.]*$') or id
end
local function decode(record)
  if not record then return nil end
  local ok, decoded = pcall(cjson.decode, record)
  if ok and type(decoded) == 'table' then return decoded end
  return nil
end
local function dedupe_of(record)
  local decoded = decode(record)
  if not decoded then return nil end
  local dk = decoded['dedupe_key']
  if decoded[1] ~= nil then dk = decoded[7] end
  if type(dk) == 'string' then return dk end
  return nil
end
-- The id of the pending task that holds dedupe key `dk`, or nil; and whether the key's own record
-- field `h` ('' when the caller has none) is taken. The dedupe hash is read first: it names the
-- holders that could not use their key's field (and every holder scheduled by older versions).
local function holder(tasks, dedupe, due, inflight, dk, h)
  local x = redis.call('HGET', dedupe, dk)
  if x then
    if pending(due, inflight, x) then return x, true end
    redis.call('HDEL', dedupe, dk)
  end
  if h == '' then return nil, false end
  local decoded = decode(redis.call('HGET', tasks, h))
  if not decoded then return nil, false end
  if decoded[1] ~= nil and decoded[7] == dk and type(decoded[3]) == 'string' then
    local t, s = string.match(decoded[3], '^(.*):([^:]*)$')
    if t then
      local id = t .. ':' .. h .. '.' .. s
      if pending(due, inflight, id) then return id, true end
    end
  end
  return nil, true
end
-- A task id whose record lives in its own field: the id of a keyed task whose key field is taken.
local function own_field_id(id)
  local head, body = string.match(id, '^(.*):([^:]*)$')
  return head .. ':' .. (string.gsub(body, '%.', ''))
end
-- `record` (a compact one) with its ref replaced by `ref` (JSON text): a keyed task that gives up
-- or takes back its key (retry of a dead letter).
local function with_ref(record, ref)
  local head, rest = string.match(record, '^(%[[^,]*,[^,]*,)(.*)$')
  if not head then return record end
  local old = string.match(rest, '^"[^"\\]*"') or string.match(rest, '^0')
  if not old then return record end
  return head .. ref .. string.sub(rest, #old + 1)
end
-- Created / due times in records: 16 significant digits (microseconds for Unix times), no
-- trailing zeros.
local function short(x)
  return string.format('%.16g', x)
end
-- Wake sleeping workers only when the new task is earlier than everything already due: they
-- already hold a timer for the head of the due set.
local function wake_if_earlier(channel, earliest, head)
  if earliest and (not head or earliest < head) then
    redis.call('PUBLISH', channel, fmt(earliest))
  end
end
"""

# KEYS: due, inflight, tasks, dedupe, counts[, guard]
# ARGV: now, channel, guard_ttl, n, then per task: id, the record after its created and first_due
#       times (``ref,tenant,...]``), kind (d|a), value (delay or absolute time), dedupe key ('' for none)
# Returns the list of ids (an existing id for a dedupe hit; for a keyed task whose key field is
# taken, the id of its own field), or nil when the guard already existed.
SCHEDULE = (
    _PRELUDE
    + r"""
local now = now_from(ARGV[1])
if KEYS[6] then
  if not redis.call('SET', KEYS[6], fmt(now), 'NX', 'EX', tonumber(ARGV[3])) then return false end
end
local n = tonumber(ARGV[4])
local now_text = short(now)
local head = head_score(KEYS[1])
local earliest = nil
local ids = {}
local tally = {}
for i = 0, n - 1 do
  local b = 5 + i * 5
  local id, rest, kind, value, dk = ARGV[b], ARGV[b + 1], ARGV[b + 2], tonumber(ARGV[b + 3]), ARGV[b + 4]
  local due = value
  if kind == 'd' then due = now + value end
  local existing, taken = nil, false
  if dk ~= '' then
    local h = field_of(id)
    if h == id then h = '' end
    existing, taken = holder(KEYS[3], KEYS[4], KEYS[1], KEYS[2], dk, h)
    if h == '' then taken = true end
  end
  if existing then
    ids[#ids + 1] = existing
  else
    if taken then
      -- the key's field holds a dead letter: this task keeps its record in a field of its own
      -- and its key in the dedupe hash
      id = own_field_id(id)
      redis.call('HSET', KEYS[4], dk, id)
    end
    -- created/first_due are only known here (server time), so the script opens the JSON array.
    local due_text = now_text
    if due ~= now then due_text = short(due) end
    redis.call('HSET', KEYS[3], field_of(id), '[' .. now_text .. ',' .. due_text .. ',' .. rest)
    redis.call('ZADD', KEYS[1], due, id)
    tally_add(tally, 'due|' .. type_of(id), 1)
    if not earliest or due < earliest then earliest = due end
    ids[#ids + 1] = id
  end
end
tally_flush(KEYS[5], tally)
wake_if_earlier(ARGV[2], earliest, head)
return ids
"""
)

# KEYS: due, inflight, tasks, attempts, owners, counts
# ARGV: now, limit, lease, token, requeue limit
# First requeues expired leases (so a dead worker's tasks come back without any reaper process),
# then moves up to `limit` due tasks into the in-flight set and returns them with their records.
# Returns {now, next due score|'', earliest lease expiry|'', {id, due, ...}, {record...},
#          {attempt...}, requeued count}.
CLAIM = (
    _PRELUDE
    + r"""
local now = now_from(ARGV[1])
local limit = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local token = ARGV[4]
local tally = {}
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[5]))
for i = 1, #expired, 2 do
  local id = expired[i]
  -- due again at its lease expiry, which keeps it ahead of tasks that became due later
  redis.call('ZADD', KEYS[1], expired[i + 1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[5], id)
  local t = type_of(id)
  tally_add(tally, 'inflight|' .. t, -1)
  tally_add(tally, 'due|' .. t, 1)
end
local claimed, records, attempts = {}, {}, {}
if limit > 0 then
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
  if #due > 0 then
    local ids = {}
    for i = 1, #due, 2 do ids[#ids + 1] = due[i] end
    redis.call('ZREM', KEYS[1], unpack(ids))
    local fields = {}
    for i = 1, #ids do fields[i] = field_of(ids[i]) end
    local recs = redis.call('HMGET', KEYS[3], unpack(fields))
    local expiry = now + lease
    local zargs, hargs = {}, {}
    for i = 1, #ids do
      local id = ids[i]
      local t = type_of(id)
      tally_add(tally, 'due|' .. t, -1)
      if recs[i] then
        zargs[#zargs + 1] = expiry
        zargs[#zargs + 1] = id
        hargs[#hargs + 1] = id
        hargs[#hargs + 1] = token .. '|' .. due[2 * i]
        claimed[#claimed + 1] = id
        claimed[#claimed + 1] = due[2 * i]
        records[#records + 1] = recs[i]
        attempts[#attempts + 1] = redis.call('HINCRBY', KEYS[4], id, 1)
        tally_add(tally, 'inflight|' .. t, 1)
      else
        -- an id without a record cannot run; drop it instead of returning it forever
        redis.call('HDEL', KEYS[4], id)
      end
    end
    if #zargs > 0 then
      redis.call('ZADD', KEYS[2], unpack(zargs))
      redis.call('HSET', KEYS[5], unpack(hargs))
    end
  end
end
tally_flush(KEYS[6], tally)
local nd = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local nl = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {fmt(now), nd[2] or '', nl[2] or '', claimed, records, attempts, #expired / 2}
"""
)

# KEYS: inflight, tasks, attempts, owners, dedupe, counts
# ARGV: n, then per task: id, token, dedupe key ('' for none)
# Returns the ids that were not acked because the lease had been lost (requeued, claimed by another).
ACK = (
    _PRELUDE
    + r"""
local n = tonumber(ARGV[1])
local done, fields, lost, tally = {}, {}, {}, {}
for i = 0, n - 1 do
  local id, token, dk = ARGV[2 + i * 3], ARGV[3 + i * 3], ARGV[4 + i * 3]
  if owns(KEYS[4], id, token) then
    done[#done + 1] = id
    fields[#fields + 1] = field_of(id)
    if dk ~= '' and redis.call('HGET', KEYS[5], dk) == id then redis.call('HDEL', KEYS[5], dk) end
    tally_add(tally, 'inflight|' .. type_of(id), -1)
  else
    lost[#lost + 1] = id
  end
end
if #done > 0 then
  redis.call('ZREM', KEYS[1], unpack(done))
  redis.call('HDEL', KEYS[2], unpack(fields))
  redis.call('HDEL', KEYS[3], unpack(done))
  redis.call('HDEL', KEYS[4], unpack(done))
end
tally_flush(KEYS[6], tally)
return lost
"""
)

# KEYS: inflight, owners
# ARGV: now, lease, n, then per task: id, token
# Returns the ids whose lease was lost.
EXTEND = (
    _PRELUDE
    + r"""
local expiry = now_from(ARGV[1]) + tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local lost = {}
for i = 0, n - 1 do
  local id, token = ARGV[4 + i * 2], ARGV[5 + i * 2]
  if owns(KEYS[2], id, token) then
    redis.call('ZADD', KEYS[1], 'XX', expiry, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
"""
)

# KEYS: due, inflight, dead, tasks, attempts, owners, dedupe, counts
# ARGV: now, channel, n, then per task: id, token, outcome (retry|defer|dead), record ('' keeps the
#       stored one), kind (d|a), value, dedupe key
# retry: back to due (the attempt stays spent); defer: back to due and the attempt is refunded;
# dead: into the dead set, releasing the dedupe key.
# Returns per task the new due / dead-at score, or '' when the lease had been lost.
RESCHEDULE = (
    _PRELUDE
    + r"""
local now = now_from(ARGV[1])
local n = tonumber(ARGV[3])
local head = head_score(KEYS[1])
local earliest = nil
local results, tally = {}, {}
for i = 0, n - 1 do
  local b = 4 + i * 7
  local id, token, outcome, record = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local kind, value, dk = ARGV[b + 4], tonumber(ARGV[b + 5]), ARGV[b + 6]
  if owns(KEYS[6], id, token) then
    redis.call('ZREM', KEYS[2], id)
    redis.call('HDEL', KEYS[6], id)
    if record ~= '' then redis.call('HSET', KEYS[4], field_of(id), record) end
    local t = type_of(id)
    tally_add(tally, 'inflight|' .. t, -1)
    if outcome == 'dead' then
      redis.call('ZADD', KEYS[3], now, id)
      if dk ~= '' and redis.call('HGET', KEYS[7], dk) == id then redis.call('HDEL', KEYS[7], dk) end
      tally_add(tally, 'dead|' .. t, 1)
      results[#results + 1] = fmt(now)
    else
      local due = value
      if kind == 'd' then due = now + value end
      if outcome == 'defer' then redis.call('HINCRBY', KEYS[5], id, -1) end
      redis.call('ZADD', KEYS[1], due, id)
      tally_add(tally, 'due|' .. t, 1)
      if not earliest or due < earliest then earliest = due end
      results[#results + 1] = fmt(due)
    end
  else
    results[#results + 1] = ''
  end
end
tally_flush(KEYS[8], tally)
wake_if_earlier(ARGV[2], earliest, head)
return results
"""
)

# KEYS: due, tasks, attempts, dedupe, counts, inflight
# ARGV: mode (id|dedupe), value (task id or dedupe key), the dedupe key's record field (mode dedupe)
# Removes a task that is due (not in flight). Returns 1 if removed.
CANCEL = (
    _PRELUDE
    + r"""
local id = ARGV[2]
if ARGV[1] == 'dedupe' then
  id = holder(KEYS[2], KEYS[4], KEYS[1], KEYS[6], ARGV[2], ARGV[3])
  if not id then return 0 end
end
if redis.call('ZREM', KEYS[1], id) == 0 then return 0 end
local dk = dedupe_of(redis.call('HGET', KEYS[2], field_of(id)))
if dk and redis.call('HGET', KEYS[4], dk) == id then redis.call('HDEL', KEYS[4], dk) end
redis.call('HDEL', KEYS[2], field_of(id))
redis.call('HDEL', KEYS[3], id)
redis.call('HINCRBY', KEYS[5], 'due|' .. type_of(id), -1)
return 1
"""
)

# KEYS: due, inflight, dead, tasks, attempts, dedupe, counts
# ARGV: now, channel, id ('' = the oldest `chunk` dead tasks), chunk
# Dead tasks become due now with a fresh set of attempts. Returns how many were requeued.
RETRY_DEAD = (
    _PRELUDE
    + r"""
local now = now_from(ARGV[1])
local ids
if ARGV[3] ~= '' then
  if not redis.call('ZSCORE', KEYS[3], ARGV[3]) then return 0 end
  ids = {ARGV[3]}
else
  ids = redis.call('ZRANGE', KEYS[3], 0, tonumber(ARGV[4]) - 1)
end
if #ids == 0 then return 0 end
local head = head_score(KEYS[1])
local tally = {}
for i = 1, #ids do
  local id = ids[i]
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[5], id)
  local field = field_of(id)
  local record = redis.call('HGET', KEYS[4], field)
  local dk = dedupe_of(record)
  if dk then
    -- take the dedupe key back only if no other pending task holds it meanwhile
    local h = field
    if h == id then h = '' end
    local other = holder(KEYS[4], KEYS[6], KEYS[1], KEYS[2], dk, h)
    if h == '' then
      if not other then redis.call('HSET', KEYS[6], dk, id) end
    else
      -- a task in its key's field holds the key through its record's ref
      local ref = '0'
      if not other then
        local t, s = string.match(id, '^(.*):[^:.]*%.([^:]*)$')
        ref = '"' .. t .. ':' .. s .. '"'
      end
      local updated = with_ref(record, ref)
      if updated ~= record then redis.call('HSET', KEYS[4], field, updated) end
    end
  end
  redis.call('ZADD', KEYS[1], now, id)
  local t = type_of(id)
  tally_add(tally, 'dead|' .. t, -1)
  tally_add(tally, 'due|' .. t, 1)
end
tally_flush(KEYS[7], tally)
wake_if_earlier(ARGV[2], now, head)
return #ids
"""
)

# KEYS: dead, tasks, attempts, counts
# ARGV: now, older_than, chunk
# Deletes up to `chunk` dead tasks dead-lettered before now - older_than. Returns how many.
PURGE_DEAD = (
    _PRELUDE
    + r"""
local cutoff = now_from(ARGV[1]) - tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff, 'LIMIT', 0, tonumber(ARGV[3]))
if #ids == 0 then return 0 end
local tally = {}
local fields = {}
for i = 1, #ids do
  tally_add(tally, 'dead|' .. type_of(ids[i]), -1)
  fields[i] = field_of(ids[i])
end
redis.call('ZREM', KEYS[1], unpack(ids))
redis.call('HDEL', KEYS[2], unpack(fields))
redis.call('HDEL', KEYS[3], unpack(ids))
tally_flush(KEYS[4], tally)
return #ids
"""
)

# KEYS: due, inflight, dead, counts
# ARGV: now
# Returns {now, due, ready (due <= now), in flight, dead, {field, count, ...}}.
STATS = (
    _PRELUDE
    + r"""
local now = now_from(ARGV[1])
return {fmt(now), redis.call('ZCARD', KEYS[1]), redis.call('ZCOUNT', KEYS[1], '-inf', now),
        redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]), redis.call('HGETALL', KEYS[4])}
"""
)

# KEYS: due
# ARGV: now
# Returns how many tasks are due now (the ready backlog), for load shedding's probe.
READY = (
    _PRELUDE
    + r"""
return redis.call('ZCOUNT', KEYS[1], '-inf', now_from(ARGV[1]))
"""
)

# KEYS: one of due|inflight|dead, tasks, attempts, owners
# ARGV: limit
# Returns {{id, score, ...}, {record...}, {attempts...}, {owner...}} (missing values are nil).
LIST = (
    _PRELUDE
    + r"""
local z = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
if #z == 0 then return {{}, {}, {}, {}} end
local ids, fields = {}, {}
for i = 1, #z, 2 do
  ids[#ids + 1] = z[i]
  fields[#fields + 1] = field_of(z[i])
end
return {z, redis.call('HMGET', KEYS[2], unpack(fields)), redis.call('HMGET', KEYS[3], unpack(ids)),
        redis.call('HMGET', KEYS[4], unpack(ids))}
"""
)

# KEYS: due, inflight, dead, tasks, attempts, owners
# ARGV: id
# Returns {record, attempts, due score, lease expiry, dead-at, owner} (missing values are nil).
GET = (
    _PRELUDE
    + r"""
local id = ARGV[1]
return {redis.call('HGET', KEYS[4], field_of(id)), redis.call('HGET', KEYS[5], id), redis.call('ZSCORE', KEYS[1], id),
        redis.call('ZSCORE', KEYS[2], id), redis.call('ZSCORE', KEYS[3], id), redis.call('HGET', KEYS[6], id)}
"""
)

# KEYS: due. ARGV: now, channel, task id. A due task becomes due now (``lily tasks run-now``, for
# development): 1, or 0 when the id is not a due task (unknown, in flight or dead).
RUN_NOW = (
    _PRELUDE
    + r"""
local due = KEYS[1]
local id = ARGV[3]
local current = redis.call('ZSCORE', due, id)
if not current then return 0 end
local now = now_from(ARGV[1])
if tonumber(current) > now then
  local head = head_score(due)
  redis.call('ZADD', due, now, id)
  wake_if_earlier(ARGV[2], now, head)
end
return 1
"""
)
