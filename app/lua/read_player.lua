-- A player's row with its neighbours, read atomically.
-- KEYS[1] ranking zset, KEYS[2] the family's players hash, KEYS[3] the board's meta hash,
-- KEYS[4] the board's values zset (dense ties), KEYS[5] the family's entry metadata hash;
-- ARGV[1] player id, ARGV[2] neighbours each side, ARGV[3] the board's tag, ARGV[4] its
-- period's start ms, ARGV[5] the game's ties, ARGV[6] '1' to read the rows' metadata.
-- Returns {total, updated ms or false, rank0 or -1, first rank0, rows ranked below the
-- player's value, member_1, sort_1, name_1, rank_1[, metadata_1], ...}.
local total = redis.call('ZCARD', KEYS[1])
local updated = redis.call('HGET', KEYS[3], 'updated')
local text = redis.call('HGET', KEYS[2], ARGV[1])
local rel, sub
if text then
  rel, sub = tag_in(text, ARGV[3])
end
local mine = rel and member(tonumber(ARGV[4]) + rel, ARGV[1], sub)
local rank = mine and redis.call('ZRANK', KEYS[1], mine)
if not rank then
  return {total, updated, -1, 0, 0}
end
local sort = redis.call('ZSCORE', KEYS[1], mine)
local below = rows_below(KEYS[1], ARGV[5], rank, mine, sort, total)
local around = tonumber(ARGV[2])
local first = math.max(0, rank - around)
local ranked = redis.call('ZRANGE', KEYS[1], first, rank + around, 'WITHSCORES')
local result = {total, updated, rank, first, below}
for _, value in ipairs(shown_rows(KEYS[1], KEYS[2], KEYS[4], KEYS[5], ARGV[5], ARGV[6], first, ranked)) do
  result[#result + 1] = value
end
return result
