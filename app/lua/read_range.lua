-- A page of a board, read atomically.
-- KEYS[1] ranking zset, KEYS[2] the family's players hash, KEYS[3] the board's meta hash;
-- ARGV[1] start, ARGV[2] stop (0-based, inclusive).
-- Returns {total, updated ms or false, member_1, sort_1, name_1, member_2, ...}.
local result = {redis.call('ZCARD', KEYS[1]), redis.call('HGET', KEYS[3], 'updated')}
for _, value in ipairs(rows_of(KEYS[1], KEYS[2], ARGV[1], ARGV[2])) do
  result[#result + 1] = value
end
return result
