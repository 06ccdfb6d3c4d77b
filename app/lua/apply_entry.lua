-- Apply one accepted entry to its board family, atomically and idempotently.
--
-- KEYS[1] log stream, KEYS[2] applied hash (submission id -> log id),
-- then one (ranking zset, rows hash) pair per window board the entry belongs to.
-- ARGV: submission id, player id, name, score, sign (1 lower-is-better, -1 higher),
--       achieved ms (13 digits), now ms, then one expire-at ms per window (0: never).
--
-- A row is "<achieved ms>|<score>|<name>"; a ranking member is "<achieved ms>:<player id>",
-- so equal scores rank the earlier achievement first and every rank is an exact ZRANK.
-- Returns {fresh, rank_1, improved_1, rank_2, improved_2, ...}; rank 0 means unranked.

local sid, pid, name, score = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local sign, at, now = tonumber(ARGV[5]), ARGV[6], ARGV[7]
local sort = sign * tonumber(score)

local fresh = redis.call('HSETNX', KEYS[2], sid, '') == 1
if fresh then
  local id = redis.call('XADD', KEYS[1], '*',
    'sid', sid, 'pid', pid, 'name', name, 'score', score, 'at', at)
  redis.call('HSET', KEYS[2], sid, id)
end

local result = {fresh and 1 or 0}
local windows = (#KEYS - 2) / 2
for i = 0, windows - 1 do
  local zkey, rkey = KEYS[3 + 2 * i], KEYS[4 + 2 * i]
  local expire_at = tonumber(ARGV[8 + i])
  local old = redis.call('HGET', rkey, pid)
  local best_at = nil
  local improved = 0
  if old then
    best_at = string.match(old, '^(%d+)|')
  end
  if fresh then
    local better = true
    if old then
      local old_score = string.match(old, '^%d+|([^|]*)|')
      local old_sort = sign * tonumber(old_score)
      -- Strictly better, or as good and achieved earlier (entries may arrive out of order).
      better = sort < old_sort or (sort == old_sort and tonumber(at) < tonumber(best_at))
      if better then
        redis.call('ZREM', zkey, best_at .. ':' .. pid)
      end
    end
    if better then
      redis.call('ZADD', zkey, sort, at .. ':' .. pid)
      redis.call('HSET', rkey, pid, at .. '|' .. score .. '|' .. name, ':updated', now)
      if expire_at > 0 then
        redis.call('PEXPIREAT', zkey, expire_at)
        redis.call('PEXPIREAT', rkey, expire_at)
      end
      best_at = at
      improved = 1
    end
  end
  local rank = nil
  if best_at then
    rank = redis.call('ZRANK', zkey, best_at .. ':' .. pid)
  end
  result[#result + 1] = rank and (rank + 1) or 0
  result[#result + 1] = improved
end
return result
