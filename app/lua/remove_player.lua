-- Ban a player from a family and take their rows off its boards, atomically, so an entry
-- being applied (which checks the ban in the same script) can never slip in between.
-- KEYS[1] banned set, KEYS[2] the family's players hash, then per board: its ranking zset and
-- meta hash (and, when ties are dense, its values zset and value counts hash). ARGV: player
-- id, sign, now ms, '1' when ties are dense, then (tag, period start ms) per board.
-- Returns the number of boards the player was removed from.

local pid, sign, now = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local dense = ARGV[4] == '1'
local stride = dense and 4 or 2
redis.call('SADD', KEYS[1], pid)
local rec = parse_record(redis.call('HGET', KEYS[2], pid))
if not rec then
  return 0
end
local removed = 0
for i = 0, (#KEYS - 2) / stride - 1 do
  local k = 3 + stride * i
  local zkey, mkey = KEYS[k], KEYS[k + 1]
  local kind, index = slot_of(ARGV[5 + 2 * i])
  local m, sort, _, sub = row_of(zkey, pid, rec, kind, index, ARGV[6 + 2 * i])
  if m then
    redis.call('ZREM', zkey, m)
    if dense then
      count_value({KEYS[k + 2], KEYS[k + 3]}, sort, sub, -1)
    end
    if redis.call('EXISTS', mkey) == 1 then
      move_sum(mkey, -sign * sort, now)
    end
    removed = removed + 1
  end
end
redis.call('HDEL', KEYS[2], pid)
return removed
