-- Put built copies in place of a family's live boards and players hash at once, if they have
-- seen the whole log.
--
-- KEYS[1] log stream, KEYS[2] banned set, KEYS[3] the players hash's copy, KEYS[4] the live
-- players hash, then per board its built keys and its live keys: (zset, meta) each, or with
-- dense ties (zset, meta, values zset, counts hash) each. Players banned while the copies were
-- built are taken off them first. A live meta keeps its counts of entries (`n`, `t:`): the log
-- may no longer hold every entry counted. ARGV: the log id the copies have read up to ('-': an
-- empty log), now ms, sign, 1 for dense ties (else 0), then (expire-at ms, 0: never; tag;
-- period start ms) per board. Returns 1 when swapped, 0 when the log has grown since (read
-- on).

local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local head = newest[1] and newest[1][1] or '-'
if head ~= ARGV[1] then
  return 0
end
local now, sign, dense = ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1'
local width = dense and 4 or 2
local built_players, live_players = KEYS[3], KEYS[4]
local boards = (#KEYS - 4) / (2 * width)
-- The j-th built key of board i (j = 1 .. width), and the j-th live one.
local function built(i, j)
  return KEYS[4 + 2 * width * i + j]
end
local function live(i, j)
  return KEYS[4 + 2 * width * i + width + j]
end
local kinds, indexes = {}, {}
for i = 0, boards - 1 do
  kinds[i], indexes[i] = slot_of(ARGV[6 + 3 * i])
end
for _, pid in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local rec = parse_record(redis.call('HGET', built_players, pid))
  if rec then
    for i = 0, boards - 1 do
      local start = ARGV[7 + 3 * i]
      local m, sort, _, sub = row_of(built(i, 1), pid, rec, kinds[i], indexes[i], start)
      if m then
        redis.call('ZREM', built(i, 1), m)
        move_sum(built(i, 2), -sign * sort, now)
        if dense then
          count_value({built(i, 3), built(i, 4)}, sort, sub, -1)
        end
      end
    end
    redis.call('HDEL', built_players, pid)
  end
end
-- UNLINK frees a replaced board in the background; RENAME over it would free it here.
for i = 0, boards - 1 do
  local expire_at = tonumber(ARGV[5 + 3 * i])
  local filled = redis.call('ZCARD', built(i, 1)) > 0
  for j = 1, width do
    if j ~= 2 then -- the meta hash stays: it keeps the counts of entries
      redis.call('UNLINK', live(i, j))
      if filled and redis.call('EXISTS', built(i, j)) == 1 then
        redis.call('RENAME', built(i, j), live(i, j))
        if expire_at > 0 then
          redis.call('PEXPIREAT', live(i, j), expire_at)
        end
      else
        redis.call('DEL', built(i, j))
      end
    end
  end
  local built_m, live_m = built(i, 2), live(i, 2)
  if filled then
    local sum = redis.call('HGET', built_m, 'sum') or '0'
    redis.call('HSET', live_m, 'sum', sum, 'updated', now)
    if expire_at > 0 then
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
