-- Keep status records moved out of another hash (see app/leaderboard/migration.py) in the hash
-- of their partition of the same generation and bucket. A record this hash holds already was
-- written by the current layout, after the one moved (or is the same, moved by a run cut
-- short), and is kept.
--
-- KEYS[1] the hash. ARGV[1] the ms the hash they come from had left to live (-1: no TTL);
-- then pairs of submission id and record.
-- The hash is given that TTL when it has none yet. Returns how many records were written.

local written = 0
for i = 2, #ARGV, 2 do
  written = written + redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
end
if tonumber(ARGV[1]) > 0 and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return written
