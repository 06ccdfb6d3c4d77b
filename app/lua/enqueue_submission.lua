-- Count the request against its rate limits; then store a new submission: its status record
-- and its entry on the ingest stream, and claim the drain flag, all or nothing. A broken limit,
-- a submission id already taken, or a revoked player key changes nothing (but the counts).
--
-- KEYS[1..n] the submission's bucket in the generations a lookup reads, newest first (KEYS[1]
-- the current one, where a new record is written; see app/storage/submissions.py),
-- KEYS[n+1] the ingest stream, KEYS[n+2] the drain flag, KEYS[n+3] the player key generations
-- hash, KEYS[n+4..] the rate-limit counters.
-- ARGV: n, the submission id, its record, the ms the current generation's hashes have left to
-- live (to its end plus the idempotency window), the queued submission (JSON), the flag's TTL in ms, the proven player's id ('' for
-- none), the generation of the key that proved them; then each counter's allowance and window
-- in ms (see rate_limit_lib.lua).
-- Returns {outcome, detail, counts, age}: outcome 1 when stored (detail 1 when this call
-- claimed the flag and must send a drain, 0 while a drain is scheduled), 0 when the id was
-- taken (detail: the existing record; age: how many generations back it was written), -1 when
-- the player's key was revoked, -2 when a limit was broken; counts is count_limits' reply.

local n = tonumber(ARGV[1])
local counts = count_limits(n + 4, #KEYS - n - 3, 9)
if counts[1] ~= 0 then return {-2, 0, counts} end
if ARGV[7] ~= '' and tonumber(ARGV[8]) < tonumber(redis.call('HGET', KEYS[n + 3], ARGV[7]) or '0')
then
  return {-1, 0, counts}
end
for age = 0, n - 1 do
  local existing = redis.call('HGET', KEYS[age + 1], ARGV[2])
  if existing then return {0, existing, counts, age} end
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
redis.call('XADD', KEYS[n + 1], '*', 'p', ARGV[5])
if redis.call('SET', KEYS[n + 2], '1', 'NX', 'PX', ARGV[6]) then return {1, 1, counts} end
return {1, 0, counts}
