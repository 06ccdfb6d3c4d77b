-- Apply one accepted entry to its board family, atomically and idempotently.
--
-- KEYS[1] log stream, KEYS[2] applied hash (submission id -> log id), KEYS[3] banned set,
-- KEYS[4] the run token's key (submission id that used it; unused without a token),
-- KEYS[5] the family's players hash, then one (ranking zset, meta hash) pair per window board
-- the entry belongs to.
-- ARGV: submission id, player id, name, score, sign (1 lower-is-better, -1 higher),
--       achieved ms (13 digits), now ms, run id ('' for none), ms to keep the run's key (>= 1),
--       the oldest readable day and week (tags of older ones are dropped from the record),
--       then per board: its tag, its period's start ms, its expire-at ms (0: never) and the
--       start ms of the entry's time bucket on it.
-- Returns {-1} for a banned player, {-2} for a run token another submission used, else
-- {fresh, logged score, logged achieved ms, rank_1, improved_1, rank_2, improved_2, ...} where
-- rank 0 means unranked. The logged score and time are those of the entry as first applied,
-- which a replay reports instead of its own.

local sid, pid, name, score = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local sign, at, now = tonumber(ARGV[5]), ARGV[6], ARGV[7]
-- Redis refuses a PX below 1 ms ("invalid expire time"); the worker never asks for one, and a
-- caller that did gets the shortest memory rather than a failed entry.
local run, run_ttl = ARGV[8], math.max(1, tonumber(ARGV[9]) or 0)
local oldest_day, oldest_week = tonumber(ARGV[10]), tonumber(ARGV[11])
local players = KEYS[5]

if redis.call('SISMEMBER', KEYS[3], pid) == 1 then
  return {-1}
end

local logged_id = redis.call('HGET', KEYS[2], sid)
local fresh = not logged_id
if fresh and run ~= '' then
  local used_by = redis.call('GET', KEYS[4])
  if used_by and used_by ~= sid then
    return {-2}
  end
  redis.call('SET', KEYS[4], sid, 'PX', run_ttl)
end
if fresh then
  logged_id = redis.call('XADD', KEYS[1], '*',
    'sid', sid, 'pid', pid, 'name', name, 'score', score, 'at', at)
  redis.call('HSET', KEYS[2], sid, logged_id)
else
  local logged = redis.call('XRANGE', KEYS[1], logged_id, logged_id)
  if logged[1] then
    local e = fields(logged[1][2])
    score, at, pid = e.score, e.at, e.pid
  end
end

-- Make the key expire at expire_at, unless it does already. PTTL is a read: unlike
-- PEXPIREAT it is not written to the AOF (nor sent to replicas), and almost every entry finds
-- its boards' expiry set. Said relative to the worker's clock ('now'), the expiry counts as set
-- within a few seconds of skew; any other difference (a key without one, a retention changed
-- by whole days) sets it.
local function expire(key, expire_at, now)
  local left = redis.call('PTTL', key)
  if left < 0 or math.abs(left - (expire_at - tonumber(now))) > 5000 then
    redis.call('PEXPIREAT', key, expire_at)
  end
end

local text = redis.call('HGET', players, pid)
local rec = parse_record(text) or new_record()
local result = {fresh and 1 or 0, score, at}
for i = 0, (#KEYS - 5) / 2 - 1 do
  local zkey, mkey = KEYS[6 + 2 * i], KEYS[7 + 2 * i]
  local kind, index = slot_of(ARGV[12 + 4 * i])
  local start = ARGV[13 + 4 * i]
  local improved, mine = 0, nil
  if fresh then
    local gain
    improved, mine, gain = offer(zkey, pid, rec, kind, index, start, score, sign, at)
    local counted = count_entry(mkey, 't:' .. ARGV[15 + 4 * i], gain, now)
    local expire_at = tonumber(ARGV[14 + 4 * i])
    if expire_at > 0 then
      if improved == 1 then
        expire(zkey, expire_at, now)
      end
      if improved == 1 or counted == 1 then
        expire(mkey, expire_at, now)
      end
    end
  else
    local _
    _, _, mine = row_of(zkey, pid, rec, kind, index, start)
  end
  local rank = mine and redis.call('ZRANK', zkey, member(mine, pid))
  result[#result + 1] = rank and (rank + 1) or 0
  result[#result + 1] = improved
end
if fresh then
  take_name(rec, name, at)
  local changed = format_record(rec, oldest_day, oldest_week)
  if changed ~= text then
    redis.call('HSET', players, pid, changed)
  end
end
return result
