-- Count the request against its rate limits; then store a new submission in its partition: its
-- status record and its entry on the partition's stream, and ask for the partition's drain
-- lease, all or nothing, in one script (on a single Redis, where its keys may be of several
-- slots; a cluster runs admit.lua, then enqueue_partition.lua). A broken limit, a submission id
-- already taken, or a revoked player key changes nothing (but the counts).
--
-- KEYS[1..n] the submission's bucket in the generations a lookup reads (see store_submission in
-- ingest_lib.lua), KEYS[n+1] the partition's stream, KEYS[n+2] its drain lease, KEYS[n+3] the
-- player key generations hash, KEYS[n+4..] the rate-limit counters.
-- ARGV: n, the submission id, its record, the ms the current generation's hashes have left to
-- live, the queued submission (JSON), the lease's TTL in ms, the proven player's id ('' for
-- none), the generation of the key that proved them; then each counter's allowance and window
-- in ms (see rate_limit_lib.lua).
-- Returns {outcome, detail, counts, age}: outcome 1 when stored (detail 1 when this call asked
-- for the lease and must send a drain, 0 while a drain is asked for or running), 0 when the id
-- was taken (detail: the existing record; age: how many generations back it was written), -1
-- when the player's key was revoked, -2 when a limit was broken; counts is count_limits' reply.

local n = tonumber(ARGV[1])
local counts = count_limits(n + 4, #KEYS - n - 3, 9)
if counts[1] ~= 0 then return {-2, 0, counts} end
if key_revoked(KEYS[n + 3], ARGV[7], ARGV[8]) then return {-1, 0, counts} end
local stored = store_submission(1, n, 2)
return {stored[1], stored[2], counts, stored[3]}
