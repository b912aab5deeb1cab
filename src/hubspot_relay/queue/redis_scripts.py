"""The Lua scripts of the Redis queue: each queue operation is one script, so that it is atomic
(a message is never half-moved between states, whatever process or connection dies) and costs
one round trip.

Keys, under the prefix P (see redis_queue.py for the model):
  P:s:{si}:{p}   the stream of source index si, partition p (entries: m, t, b, r, a)
  P:L:{si}:{p}   leased entries (zset: id -> lease end, ms)
  P:W:{si}:{p}   entries waiting in the group's pending list to be leased again (zset: id -> when, ms)
  P:N:{si}:{p}   attempts (hash: id -> n)
  P:E:{si}:{p}   last error of a retrying entry (hash: id -> text)
  P:c:{si}       counts (hash: queued, in_flight, retrying, delivered, skipped, waiting, dead)
  P:dead         dead letters (stream, same ids; fields: si, m, t, b, r, a, n, why, at)
  P:seen, P:seen:order   the dedupe window (set, and list of the same members in arrival order)
  P:seq          the message sequence; P:recent   the newest messages (list, for the demo view)

An entry id is "{n}-0" where n = seq * 4096 + si * 64 + p: a message's number tells its stream.
Lua numbers are doubles: n stays below 2^53 for 2^41 messages.
"""

from __future__ import annotations

# Shared helpers, prepended to every script.
_COMMON = r"""
local P = ARGV[1]
local function fmt(n) return string.format('%.0f', n) end
local function where(id)
  local n = tonumber(id)
  local p = n % 64
  local si = math.floor(n / 64) % 64
  local tail = si .. ':' .. p
  return si, P .. ':s:' .. tail, P .. ':L:' .. tail, P .. ':W:' .. tail, P .. ':N:' .. tail,
         P .. ':E:' .. tail
end
local function count(si, field, by)
  if by ~= 0 then redis.call('HINCRBY', P .. ':c:' .. si, field, by) end
end
local function ensure_group(s)
  if redis.call('EXISTS', s) == 0 then
    redis.call('XGROUP', 'CREATE', s, 'relay', '0', 'MKSTREAM')
  end
end
-- One call per 1,000 arguments (Lua's unpack has a limit); `extra` goes before them (a group name).
local function batched(cmd, key, args, extra)
  for i = 1, #args, 1000 do
    if extra then
      redis.call(cmd, key, extra, unpack(args, i, math.min(i + 999, #args)))
    else
      redis.call(cmd, key, unpack(args, i, math.min(i + 999, #args)))
    end
  end
end
-- Take an entry out of the leased or waiting set; returns where it was ('L', 'W', or nil).
local function unhold(id, L, W, E, si)
  if redis.call('ZREM', L, id) == 1 then
    count(si, 'in_flight', -1)
    return 'L'
  end
  if redis.call('ZREM', W, id) == 1 then
    if redis.call('HDEL', E, id) == 1 then count(si, 'retrying', -1) else count(si, 'queued', -1) end
    return 'W'
  end
  return nil
end
"""

# ARGV: P, window, recent_max, then 2 per message: a head "si|p|type|received_at|sent_at|message_id"
# (fewer arguments cost the relay less to send) and the body.
# Returns the number of messages that were new.
APPEND = (
    _COMMON
    + r"""
local window = tonumber(ARGV[2])
local recent_max = tonumber(ARGV[3])
local fresh = {}
for b = 4, #ARGV, 2 do
  local h = ARGV[b]
  local i1 = string.find(h, '|', 1, true)
  local i2 = string.find(h, '|', i1 + 1, true)
  local i3 = string.find(h, '|', i2 + 1, true)
  local i4 = string.find(h, '|', i3 + 1, true)
  local i5 = string.find(h, '|', i4 + 1, true)
  local m = {si = string.sub(h, 1, i1 - 1), p = string.sub(h, i1 + 1, i2 - 1),
             t = string.sub(h, i2 + 1, i3 - 1), r = string.sub(h, i3 + 1, i4 - 1),
             a = string.sub(h, i4 + 1, i5 - 1), m = string.sub(h, i5 + 1), b = ARGV[b + 1]}
  local key = m.si .. ':' .. m.m
  if redis.call('SADD', P .. ':seen', key) == 1 then
    redis.call('RPUSH', P .. ':seen:order', key)
    fresh[#fresh + 1] = m
  end
end
local over = redis.call('LLEN', P .. ':seen:order') - window
while over > 0 do
  local old = redis.call('LPOP', P .. ':seen:order', math.min(over, 1000))
  redis.call('SREM', P .. ':seen', unpack(old))
  over = over - #old
end
if #fresh == 0 then return 0 end
local last = redis.call('INCRBY', P .. ':seq', #fresh)
local first = last - #fresh + 1
local grouped, added, recent = {}, {}, {}
for j, m in ipairs(fresh) do
  local si, p = tonumber(m.si), tonumber(m.p)
  local id = fmt((first + j - 1) * 4096 + si * 64 + p) .. '-0'
  local s = P .. ':s:' .. si .. ':' .. p
  if not grouped[s] then
    ensure_group(s)
    grouped[s] = true
  end
  redis.call('XADD', s, id, 'm', m.m, 't', m.t, 'b', m.b, 'r', m.r, 'a', m.a)
  added[si] = (added[si] or 0) + 1
  if #fresh - j < recent_max then recent[#recent + 1] = id end
end
for si, n in pairs(added) do count(si, 'queued', n) end
redis.call('LPUSH', P .. ':recent', unpack(recent))
redis.call('LTRIM', P .. ':recent', 0, recent_max - 1)
return #fresh
"""
)

# ARGV: P, now_ms, lease_until_ms, limit, consumer, then the streams to lease from as (si, p) pairs.
# Oldest first within a stream; two passes so that one busy stream does not crowd out the others.
# Returns a flat list: id, si, message_id, type, body, received_at, sent_at, attempts per message.
LEASE = (
    _COMMON
    + r"""
local now, lease_until, limit, consumer = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), ARGV[5]
local out = {}
local taken = 0
local streams = {}
for i = 6, #ARGV, 2 do streams[#streams + 1] = {ARGV[i], ARGV[i + 1]} end
local function lease_from(si, p, want)
  local tail = si .. ':' .. p
  local s, L, W, N, E = P .. ':s:' .. tail, P .. ':L:' .. tail, P .. ':W:' .. tail, P .. ':N:' .. tail,
                        P .. ':E:' .. tail
  if want <= 0 or redis.call('EXISTS', s) == 0 then return 0 end
  local cand = {}
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', W, '-inf', now, 'LIMIT', 0, want)) do
    cand[#cand + 1] = {id, 'W'}
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', L, '-inf', now, 'LIMIT', 0, want)) do
    cand[#cand + 1] = {id, 'L'}  -- a lease that ran out (its worker hung): visible again
  end
  local fields, n_new = {}, 0
  local new = redis.call('XREADGROUP', 'GROUP', 'relay', consumer, 'COUNT', want, 'STREAMS', s, '>')
  if new then
    for _, e in ipairs(new[1][2]) do
      cand[#cand + 1] = {e[1], 'new'}
      fields[e[1]] = e[2]
      n_new = n_new + 1
    end
  end
  if n_new < #cand then  -- the group hands new entries out in order; the others are merged in
    local function seq(c) return tonumber(string.sub(c[1], 1, -3)) end
    table.sort(cand, function(x, y) return seq(x) < seq(y) end)
  end
  local got, queued, in_flight, retrying = 0, 0, 0, 0
  local leased, first_attempts, back, from_w = {}, {}, {}, {}
  for _, c in ipairs(cand) do
    local id, from = c[1], c[2]
    if got >= want then
      if from == 'new' then  -- read but not leased: waits in the pending list, first in line
        back[#back + 1] = 0
        back[#back + 1] = id
      end
    else
      local f = fields[id]
      local n = 1
      if not f then
        local e = redis.call('XRANGE', s, id, id)
        f = e[1] and e[1][2]
      end
      if from == 'W' then
        from_w[#from_w + 1] = id
        if redis.call('HDEL', E, id) == 1 then retrying = retrying - 1 else queued = queued - 1 end
        in_flight = in_flight + 1
      elseif from == 'new' then
        queued = queued - 1
        in_flight = in_flight + 1
      end
      if f then
        leased[#leased + 1] = lease_until
        leased[#leased + 1] = id
        if from == 'new' then
          first_attempts[#first_attempts + 1] = id
          first_attempts[#first_attempts + 1] = 1
        else
          n = redis.call('HINCRBY', N, id, 1)
        end
        -- fields in the order APPEND writes them: m, t, b, r, a
        local o = #out
        out[o + 1] = string.sub(id, 1, -3)
        out[o + 2] = si
        out[o + 3] = f[2]
        out[o + 4] = f[4]
        out[o + 5] = f[6]
        out[o + 6] = f[8]
        out[o + 7] = f[10]
        out[o + 8] = n
        got = got + 1
      else  -- an entry that is gone (deleted by hand): forget it
        redis.call('ZREM', L, id)
        in_flight = in_flight - 1
      end
    end
  end
  if #from_w > 0 then batched('ZREM', W, from_w) end
  if #leased > 0 then batched('ZADD', L, leased) end
  if #first_attempts > 0 then batched('HSET', N, first_attempts) end
  if #back > 0 then batched('ZADD', W, back) end
  count(si, 'queued', queued)
  count(si, 'in_flight', in_flight)
  count(si, 'retrying', retrying)
  return got
end
local share = math.ceil(limit / math.max(1, #streams))
for _, st in ipairs(streams) do taken = taken + lease_from(st[1], st[2], math.min(share, limit - taken)) end
for _, st in ipairs(streams) do taken = taken + lease_from(st[1], st[2], limit - taken) end
return out
"""
)

# ARGV: P, now_ms, outcome (the count it adds to: delivered, skipped or waiting), ids... Grouped by
# stream, each group in a few calls (ZMSCORE tells which were leased or waiting).
ACK = (
    _COMMON
    + r"""
local outcome = ARGV[3]
local groups = {}
for i = 4, #ARGV do
  local si, s, L, W, N, E = where(ARGV[i])
  local g = groups[s]
  if not g then
    g = {si = si, s = s, L = L, W = W, N = N, E = E, ids = {}}
    groups[s] = g
  end
  g.ids[#g.ids + 1] = ARGV[i] .. '-0'
end
local done = 0
for _, g in pairs(groups) do
  local acked, in_l, in_w = {}, {}, {}
  for i = 1, #g.ids, 1000 do
    local chunk = {unpack(g.ids, i, math.min(i + 999, #g.ids))}
    local leased = redis.call('ZMSCORE', g.L, unpack(chunk))
    local waiting = redis.call('ZMSCORE', g.W, unpack(chunk))
    for k, id in ipairs(chunk) do
      if leased[k] then
        in_l[#in_l + 1] = id
        acked[#acked + 1] = id
      elseif waiting[k] then
        in_w[#in_w + 1] = id
        acked[#acked + 1] = id
      end
    end
  end
  if #in_l > 0 then
    batched('ZREM', g.L, in_l)
    count(g.si, 'in_flight', -#in_l)
  end
  for _, id in ipairs(in_w) do
    redis.call('ZREM', g.W, id)
    if redis.call('HDEL', g.E, id) == 1 then count(g.si, 'retrying', -1) else count(g.si, 'queued', -1) end
  end
  if #acked > 0 then
    batched('XACK', g.s, acked, 'relay')
    batched('XDEL', g.s, acked)
    batched('HDEL', g.N, acked)
    count(g.si, outcome, #acked)
    done = done + #acked
  end
end
return done
"""
)

# ARGV: P, ids... : leased entries visible again at once, the attempt not counted.
RELEASE = (
    _COMMON
    + r"""
for i = 2, #ARGV do
  local id = ARGV[i] .. '-0'
  local si, s, L, W, N, E = where(ARGV[i])
  if redis.call('ZREM', L, id) == 1 then
    redis.call('ZADD', W, 0, id)
    local n = redis.call('HINCRBY', N, id, -1)
    if n <= 0 then redis.call('HDEL', N, id) end
    count(si, 'in_flight', -1)
    count(si, 'queued', 1)
  end
end
return 1
"""
)

# ARGV: P, visible_at_ms, error, ids...
RETRY = (
    _COMMON
    + r"""
local at, err = ARGV[2], ARGV[3]
for i = 4, #ARGV do
  local id = ARGV[i] .. '-0'
  local si, s, L, W, N, E = where(ARGV[i])
  if unhold(id, L, W, E, si) then
    redis.call('ZADD', W, at, id)
    redis.call('HSET', E, id, err)
    count(si, 'retrying', 1)
  end
end
return 1
"""
)

# ARGV: P, now (seconds), reason, ids...
DEAD = (
    _COMMON
    + r"""
local now, reason = ARGV[2], ARGV[3]
for i = 4, #ARGV do
  local id = ARGV[i] .. '-0'
  local si, s, L, W, N, E = where(ARGV[i])
  if unhold(id, L, W, E, si) then
    local e = redis.call('XRANGE', s, id, id)
    if e[1] then
      local m = {}
      for k = 1, #e[1][2], 2 do m[e[1][2][k]] = e[1][2][k + 1] end
      local n = redis.call('HGET', N, id) or '0'
      redis.call('XADD', P .. ':dead', id, 'si', si, 'm', m['m'], 't', m['t'], 'b', m['b'], 'r', m['r'],
                 'a', m['a'], 'n', n, 'why', reason, 'at', now)
      count(si, 'dead', 1)
    end
    redis.call('XACK', s, 'relay', id)
    redis.call('XDEL', s, id)
    redis.call('HDEL', N, id)
  end
end
return 1
"""
)

# ARGV: P, ids of dead letters... : each goes back to its stream as a new message (a new id, the
# attempts reset). Returns how many.
REPLAY = (
    _COMMON
    + r"""
local moved = 0
for i = 2, #ARGV do
  local id = ARGV[i] .. '-0'
  local e = redis.call('XRANGE', P .. ':dead', id, id)
  if e[1] then
    local m = {}
    for k = 1, #e[1][2], 2 do m[e[1][2][k]] = e[1][2][k + 1] end
    local n = tonumber(ARGV[i])
    local si, p = tonumber(m['si']), n % 64
    local seq = redis.call('INCR', P .. ':seq')
    local s = P .. ':s:' .. si .. ':' .. p
    ensure_group(s)
    redis.call('XADD', s, fmt(seq * 4096 + si * 64 + p) .. '-0', 'm', m['m'], 't', m['t'], 'b', m['b'],
               'r', m['r'], 'a', m['a'])
    redis.call('XDEL', P .. ':dead', id)
    count(si, 'dead', -1)
    count(si, 'queued', 1)
    moved = moved + 1
  end
end
return moved
"""
)

# ARGV: P, ids of dead letters... : deleted for good (the right to be forgotten).
ERASE = (
    _COMMON
    + r"""
local erased = 0
for i = 2, #ARGV do
  local id = ARGV[i] .. '-0'
  local e = redis.call('XRANGE', P .. ':dead', id, id)
  if e[1] then
    local m = {}
    for k = 1, #e[1][2], 2 do m[e[1][2][k]] = e[1][2][k + 1] end
    redis.call('XDEL', P .. ':dead', id)
    count(tonumber(m['si']), 'dead', -1)
    erased = erased + 1
  end
end
return erased
"""
)

# ARGV: P, n, then n (si, p) pairs, then the ids to keep. Leases in those streams that this
# process does not hold (a process that gave the partition up or died; or a lease whose reply this
# process lost with its connection) are visible again at once, first in line (attempts stand).
RECLAIM = (
    _COMMON
    + r"""
local pairs_n = tonumber(ARGV[2])
local keep = {}
for i = 3 + 2 * pairs_n, #ARGV do keep[ARGV[i] .. '-0'] = true end
local moved = 0
for i = 3, 2 + 2 * pairs_n, 2 do
  local tail = ARGV[i] .. ':' .. ARGV[i + 1]
  local L, W = P .. ':L:' .. tail, P .. ':W:' .. tail
  for _, id in ipairs(redis.call('ZRANGE', L, 0, -1)) do
    if not keep[id] then
      redis.call('ZREM', L, id)
      redis.call('ZADD', W, 0, id)  -- first in line: ahead of anything newer in its stream
      count(ARGV[i], 'in_flight', -1)
      count(ARGV[i], 'queued', 1)
      moved = moved + 1
    end
  end
end
return moved
"""
)

# ARGV: P, name. A source's index (0-63), the same in every process.
SOURCE_INDEX = r"""
local P, name = ARGV[1], ARGV[2]
local si = redis.call('HGET', P .. ':sources', name)
if si then return tonumber(si) end
local n = redis.call('HLEN', P .. ':sources')
if n >= 64 then return -1 end
redis.call('HSET', P .. ':sources', name, n)
return n
"""
