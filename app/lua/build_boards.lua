-- Replay a slice of a family's log into copies of its boards and of its players hash.
--
-- KEYS[1] log stream, KEYS[2] banned set, KEYS[3] the players hash's copy, then per board copy
-- being built (never a live board): its ranking zset and meta hash (and, when ties are dense,
-- its values zset and value counts hash). ARGV: XRANGE start ('-' or '(id'), count, now ms,
-- the oldest readable day, week, month and season, sign, keep, sub_sign, '1' when ties are
-- dense, then per board: min achieved ms, max achieved ms (exclusive, 0 for none), its tag and
-- its period's start ms. Each entry is placed as apply_entry.lua places it.
-- Returns {position, read}: the last id read or, once nothing is left, the log's newest id
-- ('-' for an empty log), so that the caller knows how much of the log the copies have seen.

local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))
local now = ARGV[3]
local oldest = horizon_of(ARGV, 4)
local rule = {sign = tonumber(ARGV[8]), keep = ARGV[9], sub_sign = tonumber(ARGV[10])}
local dense = ARGV[11] == '1'
local FIRST_BOARD_ARG, FIRST_BOARD_KEY = 12, 4
local stride = dense and 4 or 2
local players = KEYS[3]
local boards = (#KEYS - FIRST_BOARD_KEY + 1) / stride
local kinds, indexes = {}, {}
for i = 0, boards - 1 do
  kinds[i], indexes[i] = slot_of(ARGV[FIRST_BOARD_ARG + 2 + 4 * i])
end
for _, entry in ipairs(entries) do
  local e = fields(entry[2])
  if redis.call('SISMEMBER', KEYS[2], e.pid) == 0 then
    local at = tonumber(e.at)
    local placed = entry_of(rule, e.score, e.at, e.sub)
    local text = redis.call('HGET', players, e.pid)
    local rec = parse_record(text) or new_record()
    for i = 0, boards - 1 do
      local a = FIRST_BOARD_ARG + 4 * i
      local min_at, max_at = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
      if at >= min_at and (max_at == 0 or at < max_at) then
        local k = FIRST_BOARD_KEY + stride * i
        local vkeys = dense and {KEYS[k + 2], KEYS[k + 3]} or nil
        local improved, _, gain = place(rule, KEYS[k], vkeys, e.pid, rec, kinds[i], indexes[i],
          ARGV[a + 3], placed)
        if improved == 1 then
          move_sum(KEYS[k + 1], gain, now)
        end
      end
    end
    take_name(rec, e.name, e.at)
    local changed = format_record(rec, oldest)
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
