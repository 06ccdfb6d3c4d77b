-- Put built copies in place of a family's live boards at once, if they have seen the whole log.
--
-- KEYS[1] log stream, KEYS[2] banned set, then (built zset, built rows, live zset, live rows)
-- per board. Players banned while the copies were built are taken off them first.
-- ARGV: the log id the copies have read up to ('-': an empty log), now ms, then expire-at ms
-- per board (0: never). Returns 1 when swapped, 0 when the log has grown since (read on).

local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local head = newest[1] and newest[1][1] or '-'
if head ~= ARGV[1] then
  return 0
end
local banned = redis.call('SMEMBERS', KEYS[2])
for i = 0, (#KEYS - 2) / 4 - 1 do
  local built_z, built_r = KEYS[3 + 4 * i], KEYS[4 + 4 * i]
  local live_z, live_r = KEYS[5 + 4 * i], KEYS[6 + 4 * i]
  for _, pid in ipairs(banned) do
    local at = best_at(built_r, pid)
    if at then
      redis.call('ZREM', built_z, member(at, pid))
      redis.call('HDEL', built_r, pid)
    end
  end
  if redis.call('ZCARD', built_z) > 0 then
    redis.call('HSET', built_r, ':updated', ARGV[2])
    redis.call('RENAME', built_z, live_z)
    redis.call('RENAME', built_r, live_r)
    local expire_at = tonumber(ARGV[3 + i])
    if expire_at > 0 then
      redis.call('PEXPIREAT', live_z, expire_at)
      redis.call('PEXPIREAT', live_r, expire_at)
    end
  else
    redis.call('DEL', built_r, live_z, live_r)
  end
end
return 1
