-- Replay a slice of a family's log into copies of its boards.
--
-- KEYS[1] log stream, KEYS[2] banned set, then one (ranking zset, rows hash) pair per board
-- copy being built (never a live board). ARGV: XRANGE start ('-' or '(id'), count, sign,
-- now ms, then (min achieved ms, max achieved ms exclusive, 0 for none) per board.
-- Returns {position, read}: the last id read or, once nothing is left, the log's newest id
-- ('-' for an empty log), so that the caller knows how much of the log the copies have seen.

local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))
local sign, now = tonumber(ARGV[3]), ARGV[4]
local boards = (#KEYS - 2) / 2
for _, entry in ipairs(entries) do
  local e = fields(entry[2])
  if redis.call('SISMEMBER', KEYS[2], e.pid) == 0 then
    local at = tonumber(e.at)
    for i = 0, boards - 1 do
      local min_at, max_at = tonumber(ARGV[5 + 2 * i]), tonumber(ARGV[6 + 2 * i])
      if at >= min_at and (max_at == 0 or at < max_at) then
        offer(KEYS[3 + 2 * i], KEYS[4 + 2 * i], e.pid, e.name, e.score, sign, e.at, now)
      end
    end
  end
end
local position
if #entries > 0 then
  position = entries[#entries][1]
else
  local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  position = newest[1] and newest[1][1] or '-'
end
return {position, #entries}
