-- A player's row with its neighbours, read atomically.
-- KEYS[1] ranking zset, KEYS[2] the family's players hash, KEYS[3] the board's meta hash;
-- ARGV[1] player id, ARGV[2] neighbours each side, ARGV[3] the board's tag, ARGV[4] its
-- period's start ms.
-- Returns {total, updated ms or false, rank0 or -1, first rank0, member_1, sort_1, name_1, ...}.
local total = redis.call('ZCARD', KEYS[1])
local updated = redis.call('HGET', KEYS[3], 'updated')
local text = redis.call('HGET', KEYS[2], ARGV[1])
local rel, sub
if text then
  rel, sub = tag_in(text, ARGV[3])
end
local rank = rel and redis.call('ZRANK', KEYS[1], member(tonumber(ARGV[4]) + rel, ARGV[1], sub))
if not rank then
  return {total, updated, -1, 0}
end
local around = tonumber(ARGV[2])
local first = math.max(0, rank - around)
local result = {total, updated, rank, first}
for _, value in ipairs(rows_of(KEYS[1], KEYS[2], first, rank + around)) do
  result[#result + 1] = value
end
return result
