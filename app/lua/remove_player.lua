-- Ban a player from a family and take their rows off its boards, atomically, so an entry
-- being applied (which checks the ban in the same script) can never slip in between.
-- KEYS[1] banned set, then (ranking zset, rows hash) per board. ARGV[1] player id.
-- Returns the number of boards the player was removed from.

local pid = ARGV[1]
redis.call('SADD', KEYS[1], pid)
local removed = 0
for i = 0, (#KEYS - 1) / 2 - 1 do
  local zkey, rkey = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  local at = best_at(rkey, pid)
  if at then
    redis.call('ZREM', zkey, member(at, pid))
    redis.call('HDEL', rkey, pid)
    removed = removed + 1
  end
end
return removed
