-- A page of a board, read atomically.
-- KEYS[1] ranking zset, KEYS[2] the family's players hash, KEYS[3] the board's meta hash,
-- KEYS[4] the board's values zset (dense ties), KEYS[5] the family's entry metadata hash;
-- ARGV[1] start, ARGV[2] stop (0-based, inclusive), ARGV[3] the game's ties, ARGV[4] '1' to
-- read the rows' metadata.
-- Returns {total, updated ms or false, member_1, sort_1, name_1, rank_1[, metadata_1], ...}.
local result = {redis.call('ZCARD', KEYS[1]), redis.call('HGET', KEYS[3], 'updated')}
local ranked = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2], 'WITHSCORES')
local first = tonumber(ARGV[1])
for _, value in ipairs(shown_rows(KEYS[1], KEYS[2], KEYS[4], KEYS[5], ARGV[3], ARGV[4], first, ranked)) do
  result[#result + 1] = value
end
return result
