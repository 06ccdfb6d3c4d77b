-- Some players' rows on a board (a friends board), best first, read atomically.
-- KEYS[1] ranking zset, KEYS[2] the family's players hash, KEYS[3] the board's meta hash,
-- KEYS[4] the board's values zset (dense ties), KEYS[5] the family's entry metadata hash;
-- ARGV[1] the board's tag, ARGV[2] its period's start ms, ARGV[3] the game's ties, ARGV[4] '1'
-- to read the rows' metadata, ARGV[5..] player ids.
-- Returns {total, updated ms or false, member_1, sort_1, name_1, rank_1[, metadata_1], ...}:
-- the ranked players' rows in board order, each with its rank on the whole board.
local pids = {}
for i = 5, #ARGV do
  pids[#pids + 1] = ARGV[i]
end
local texts = records_of(KEYS[2], pids)
local found = {}
for i, pid in ipairs(pids) do
  local rel, sub
  if texts[i] then
    rel, sub = tag_in(texts[i], ARGV[1])
  end
  local m = rel and member(tonumber(ARGV[2]) + rel, pid, sub)
  local place = m and redis.call('ZRANK', KEYS[1], m)
  if place then
    found[#found + 1] = {place, m, texts[i]}
  end
end
table.sort(found, function(a, b)
  return a[1] < b[1]
end)
local with_meta = ARGV[4] == '1'
local metas = {}
if with_meta and #found > 0 then
  local fields = {}
  for i, row in ipairs(found) do
    fields[i] = entry_field_of(row[2])
  end
  metas = redis.call('HMGET', KEYS[5], unpack(fields))
end
local result = {redis.call('ZCARD', KEYS[1]), redis.call('HGET', KEYS[3], 'updated')}
for i, row in ipairs(found) do
  local place, m, text = row[1], row[2], row[3]
  local sort = redis.call('ZSCORE', KEYS[1], m)
  result[#result + 1] = m
  result[#result + 1] = sort
  result[#result + 1] = name_in(text) or false
  result[#result + 1] = shown_rank(KEYS[1], KEYS[4], ARGV[3], place, m, sort)
  if with_meta then
    result[#result + 1] = metas[i] or false
  end
end
return result
