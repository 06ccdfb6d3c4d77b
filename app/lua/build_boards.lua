-- Replay a slice of a family's log into copies of its boards and of its players hash.
--
-- KEYS[1] log stream, KEYS[2] banned set, KEYS[3] the players hash's copy, then one (ranking
-- zset, meta hash) pair per board copy being built (never a live board). ARGV: XRANGE start
-- ('-' or '(id'), count, sign, now ms, the oldest readable day and week, then per board: min
-- achieved ms, max achieved ms (exclusive, 0 for none), its tag and its period's start ms.
-- Returns {position, read}: the last id read or, once nothing is left, the log's newest id
-- ('-' for an empty log), so that the caller knows how much of the log the copies have seen.

local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))
local sign, now = tonumber(ARGV[3]), ARGV[4]
local oldest_day, oldest_week = tonumber(ARGV[5]), tonumber(ARGV[6])
local players = KEYS[3]
local boards = (#KEYS - 3) / 2
local kinds, indexes = {}, {}
for i = 0, boards - 1 do
  kinds[i], indexes[i] = slot_of(ARGV[9 + 4 * i])
end
for _, entry in ipairs(entries) do
  local e = fields(entry[2])
  if redis.call('SISMEMBER', KEYS[2], e.pid) == 0 then
    local at = tonumber(e.at)
    local text = redis.call('HGET', players, e.pid)
    local rec = parse_record(text) or new_record()
    for i = 0, boards - 1 do
      local min_at, max_at = tonumber(ARGV[7 + 4 * i]), tonumber(ARGV[8 + 4 * i])
      if at >= min_at and (max_at == 0 or at < max_at) then
        local improved, _, gain = offer(KEYS[4 + 2 * i], e.pid, rec, kinds[i], indexes[i],
          ARGV[10 + 4 * i], e.score, sign, e.at)
        if improved == 1 then
          move_sum(KEYS[5 + 2 * i], gain, now)
        end
      end
    end
    take_name(rec, e.name, e.at)
    local changed = format_record(rec, oldest_day, oldest_week)
    if changed ~= text then
      redis.call('HSET', players, e.pid, changed)
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
