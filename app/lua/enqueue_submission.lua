-- Count the request against its rate limits; then store a new submission: its status record
-- and its entry on the ingest stream, and claim the drain flag, all or nothing. A broken limit,
-- a submission id already taken, or a revoked player key changes nothing (but the counts).
--
-- KEYS[1] the submission's record, KEYS[2] the ingest stream, KEYS[3] the drain flag,
-- KEYS[4] the player key generations hash, KEYS[5..] the rate-limit counters.
-- ARGV: the record (JSON), its TTL in s, the queued submission (JSON), the flag's TTL in ms,
-- the proven player's id ('' for none), the generation of the key that proved them; then each
-- counter's allowance and window in ms (see rate_limit_lib.lua).
-- Returns {outcome, detail, counts}: outcome 1 when stored (detail 1 when this call claimed the
-- flag and must send a drain, 0 while a drain is scheduled), 0 when the id was taken (detail:
-- the existing record), -1 when the player's key was revoked, -2 when a limit was broken;
-- counts is count_limits' reply.

local counts = count_limits(5, #KEYS - 4, 7)
if counts[1] ~= 0 then return {-2, 0, counts} end
if ARGV[5] ~= '' and tonumber(ARGV[6]) < tonumber(redis.call('HGET', KEYS[4], ARGV[5]) or '0')
then
  return {-1, 0, counts}
end
local existing = redis.call('GET', KEYS[1])
if existing then return {0, existing, counts} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('XADD', KEYS[2], '*', 'p', ARGV[3])
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[4]) then return {1, 1, counts} end
return {1, 0, counts}
