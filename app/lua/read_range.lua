-- A page of a board, read atomically.
-- KEYS[1] ranking zset, KEYS[2] rows hash; ARGV[1] start, ARGV[2] stop (0-based, inclusive).
-- Returns {total, updated_ms or false, member_1, row_1, member_2, row_2, ...}.
local members = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2])
local result = {redis.call('ZCARD', KEYS[1]), redis.call('HGET', KEYS[2], ':updated')}
for _, member in ipairs(members) do
  local pid = string.match(member, '^%d+:(.*)$')
  result[#result + 1] = member
  result[#result + 1] = redis.call('HGET', KEYS[2], pid)
end
return result
