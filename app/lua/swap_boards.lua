-- Put built copies in place of a family's live boards and players hash at once, if they have
-- seen the whole log.
--
-- KEYS[1] log stream, KEYS[2] banned set, KEYS[3] the players hash's copy, KEYS[4] the live
-- players hash, then (built zset, built meta, live zset, live meta) per board. Players banned
-- while the copies were built are taken off them first. A live meta keeps its counts of
-- entries (`n`, `t:`): the log may no longer hold every entry counted. ARGV: the log id the
-- copies have read up to ('-': an empty log), now ms, sign, then (expire-at ms, 0: never;
-- tag; period start ms) per board. Returns 1 when swapped, 0 when the log has grown since
-- (read on).

local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local head = newest[1] and newest[1][1] or '-'
if head ~= ARGV[1] then
  return 0
end
local now, sign = ARGV[2], tonumber(ARGV[3])
local built_players, live_players = KEYS[3], KEYS[4]
local boards = (#KEYS - 4) / 4
local kinds, indexes = {}, {}
for i = 0, boards - 1 do
  kinds[i], indexes[i] = slot_of(ARGV[5 + 3 * i])
end
for _, pid in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local rec = parse_record(redis.call('HGET', built_players, pid))
  if rec then
    for i = 0, boards - 1 do
      local built_z, built_m = KEYS[5 + 4 * i], KEYS[6 + 4 * i]
      local m, sort = row_of(built_z, pid, rec, kinds[i], indexes[i], ARGV[6 + 3 * i])
      if m then
        redis.call('ZREM', built_z, m)
        move_sum(built_m, -sign * sort, now)
      end
    end
    redis.call('HDEL', built_players, pid)
  end
end
-- UNLINK frees a replaced board in the background; RENAME over it would free it here.
for i = 0, boards - 1 do
  local built_z, built_m = KEYS[5 + 4 * i], KEYS[6 + 4 * i]
  local live_z, live_m = KEYS[7 + 4 * i], KEYS[8 + 4 * i]
  local expire_at = tonumber(ARGV[4 + 3 * i])
  redis.call('UNLINK', live_z)
  if redis.call('ZCARD', built_z) > 0 then
    redis.call('RENAME', built_z, live_z)
    local sum = redis.call('HGET', built_m, 'sum') or '0'
    redis.call('HSET', live_m, 'sum', sum, 'updated', now)
    if expire_at > 0 then
      redis.call('PEXPIREAT', live_z, expire_at)
      redis.call('PEXPIREAT', live_m, expire_at)
    end
  elseif redis.call('EXISTS', live_m) == 1 then
    redis.call('HSET', live_m, 'sum', '0', 'updated', now)
  end
  redis.call('DEL', built_m)
end
redis.call('UNLINK', live_players)
if redis.call('EXISTS', built_players) == 1 then
  redis.call('RENAME', built_players, live_players)
end
return 1
