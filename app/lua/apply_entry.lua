-- Apply one accepted entry to its board family, atomically and idempotently.
--
-- KEYS[1] log stream, KEYS[2] applied hash (submission id -> log id), KEYS[3] banned set,
-- KEYS[4] the run token's key (submission id that used it; unused without a token),
-- KEYS[5] the family's players hash, KEYS[6] its entry metadata hash, then per window board
-- the entry belongs to: its ranking zset and meta hash (and, when ties are dense, its values
-- zset and value counts hash).
-- ARGV: submission id, player id, name, score, sign (1 lower-is-better, -1 higher),
--       achieved ms (13 digits), now ms, run id ('' for none), ms to keep the run's key (>= 1),
--       the oldest readable day, week, month and season (tags of older ones are dropped from
--       the record), keep ('best', 'latest' or 'sum'), sub_sign (0: no subscores), the
--       subscore ('' for none), the metadata's JSON ('' for none), the ties policy,
--       then per board: its tag, its period's start ms, its expire-at ms (0: never) and the
--       start ms of the entry's time bucket on it.
-- Returns {-1} for a banned player, {-2} for a run token another submission used, else
-- {fresh, logged score, logged achieved ms, rank_1, improved_1, rank_2, improved_2, ...} where
-- rank 0 means unranked, and a rank is the one the board shows (its ties policy). The logged score and time are those of the entry as first applied,
-- which a replay reports instead of its own.

local sid, pid, name, score = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local sign, at, now = tonumber(ARGV[5]), ARGV[6], ARGV[7]
-- Redis refuses a PX below 1 ms ("invalid expire time"); the worker never asks for one, and a
-- caller that did gets the shortest memory rather than a failed entry.
local run, run_ttl = ARGV[8], math.max(1, tonumber(ARGV[9]) or 0)
local oldest = horizon_of(ARGV, 10)
local rule = {sign = sign, keep = ARGV[14], sub_sign = tonumber(ARGV[15])}
local sub, meta, ties = ARGV[16], ARGV[17], ARGV[18]
local dense = ties == 'dense'
local players, emeta = KEYS[5], KEYS[6]
local FIRST_BOARD_ARG, FIRST_BOARD_KEY = 19, 7
local stride = dense and 4 or 2

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
  local logged = {'sid', sid, 'pid', pid, 'name', name, 'score', score, 'at', at}
  if sub ~= '' then
    logged[#logged + 1], logged[#logged + 2] = 'sub', sub
  end
  if meta ~= '' then
    logged[#logged + 1], logged[#logged + 2] = 'meta', meta
  end
  logged_id = redis.call('XADD', KEYS[1], '*', unpack(logged))
  redis.call('HSET', KEYS[2], sid, logged_id)
  keep_metadata(emeta, at, pid, meta)
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
local e = entry_of(rule, score, at, sub)
for i = 0, (#KEYS - FIRST_BOARD_KEY + 1) / stride - 1 do
  local k = FIRST_BOARD_KEY + stride * i
  local zkey, mkey = KEYS[k], KEYS[k + 1]
  local vkeys = dense and {KEYS[k + 2], KEYS[k + 3]} or nil
  local a = FIRST_BOARD_ARG + 4 * i
  local kind, index = slot_of(ARGV[a])
  local start = ARGV[a + 1]
  local improved, mine = 0, nil
  if fresh then
    local gain
    improved, mine, gain = place(rule, zkey, vkeys, pid, rec, kind, index, start, e)
    local counted = count_entry(mkey, 't:' .. ARGV[a + 3], gain, now)
    local expire_at = tonumber(ARGV[a + 2])
    if expire_at > 0 then
      if improved == 1 then
        expire(zkey, expire_at, now)
        if vkeys then
          expire(vkeys[1], expire_at, now)
          expire(vkeys[2], expire_at, now)
        end
      end
      if improved == 1 or counted == 1 then
        expire(mkey, expire_at, now)
      end
    end
  else
    mine = row_of(zkey, pid, rec, kind, index, start)
  end
  local index = mine and redis.call('ZRANK', zkey, mine)
  if index and ties == 'unique' then
    result[#result + 1] = index + 1
  elseif index then
    local sort = redis.call('ZSCORE', zkey, mine)
    result[#result + 1] = shown_rank(zkey, vkeys and vkeys[1], ties, index, mine, sort)
  else
    result[#result + 1] = 0
  end
  result[#result + 1] = improved
end
if fresh then
  take_name(rec, name, at)
  local changed = format_record(rec, oldest)
  if changed ~= text then
    redis.call('HSET', players, pid, changed)
  end
end
return result
