-- A player's row with its neighbours, read atomically.
-- KEYS[1] ranking zset, KEYS[2] rows hash; ARGV[1] player id, ARGV[2] neighbours each side.
-- Returns {total, updated_ms or false, rank0 or -1, first rank0, member_1, row_1, ...}.
local total = redis.call('ZCARD', KEYS[1])
local updated = redis.call('HGET', KEYS[2], ':updated')
local row = redis.call('HGET', KEYS[2], ARGV[1])
if not row then
  return {total, updated, -1, 0}
end
local at = string.match(row, '^(%d+)|')
local rank = redis.call('ZRANK', KEYS[1], at .. ':' .. ARGV[1])
if not rank then
  return {total, updated, -1, 0}
end
local around = tonumber(ARGV[2])
local first = math.max(0, rank - around)
local result = {total, updated, rank, first}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], first, rank + around)) do
  local pid = string.match(member, '^%d+:(.*)$')
  result[#result + 1] = member
  result[#result + 1] = redis.call('HGET', KEYS[2], pid)
end
return result
