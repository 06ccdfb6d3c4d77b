-- Ban a player from a family and take their rows off its boards, atomically, so an entry
-- being applied (which checks the ban in the same script) can never slip in between.
-- KEYS[1] banned set, KEYS[2] the family's players hash, then (ranking zset, meta hash) per
-- board. ARGV: player id, sign, now ms, then (tag, period start ms) per board.
-- Returns the number of boards the player was removed from.

local pid, sign, now = ARGV[1], tonumber(ARGV[2]), ARGV[3]
redis.call('SADD', KEYS[1], pid)
local rec = parse_record(redis.call('HGET', KEYS[2], pid))
if not rec then
  return 0
end
local removed = 0
for i = 0, (#KEYS - 2) / 2 - 1 do
  local zkey, mkey = KEYS[3 + 2 * i], KEYS[4 + 2 * i]
  local kind, index = slot_of(ARGV[4 + 2 * i])
  local m, sort = row_of(zkey, pid, rec, kind, index, ARGV[5 + 2 * i])
  if m then
    redis.call('ZREM', zkey, m)
    if redis.call('EXISTS', mkey) == 1 then
      move_sum(mkey, -sign * sort, now)
    end
    removed = removed + 1
  end
end
redis.call('HDEL', KEYS[2], pid)
return removed
