-- Replace a player's key: the one shown must not be revoked; the next generation becomes the
-- oldest honoured, so every key before it (the one shown included) stops working.
-- KEYS[1] key generations hash. ARGV[1] player id, ARGV[2] the shown key's generation.
-- Returns the new generation, or -1 if the shown key was already revoked.

local stored = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local shown = tonumber(ARGV[2])
if shown < stored then
  return -1
end
redis.call('HSET', KEYS[1], ARGV[1], shown + 1)
return shown + 1
