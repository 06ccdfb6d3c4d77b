-- Store a new submission: its status record and its entry on the ingest stream, then claim the
-- drain flag, all or nothing; a submission id already taken, or a revoked player key, changes
-- nothing.
--
-- KEYS[1] the submission's record, KEYS[2] the ingest stream, KEYS[3] the drain flag,
-- KEYS[4] the player key generations hash.
-- ARGV: the record (JSON), its TTL in s, the queued submission (JSON), the flag's TTL in ms,
-- the proven player's id ('' for none), the generation of the key that proved them.
-- Returns {1, 1} when stored and this call claimed the flag (it must send a drain), {1, 0} when
-- stored while a drain is scheduled, {0, existing record} when the id was taken, {-1, 0} when
-- the player's key was revoked.

if ARGV[5] ~= '' and tonumber(ARGV[6]) < tonumber(redis.call('HGET', KEYS[4], ARGV[5]) or '0')
then
  return {-1, 0}
end
local existing = redis.call('GET', KEYS[1])
if existing then return {0, existing} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('XADD', KEYS[2], '*', 'p', ARGV[3])
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[4]) then return {1, 1} end
return {1, 0}
