-- The request slot's half of storing a submission on a cluster: count the request against its
-- rate limits and check the player's key (then enqueue_partition.lua stores it, on its
-- partition's slot). A broken limit or a revoked key stops there.
--
-- KEYS[1] the player key generations hash, KEYS[2..] the rate-limit counters.
-- ARGV: the proven player's id ('' for none), the generation of the key that proved them; then
-- each counter's allowance and window in ms (see rate_limit_lib.lua).
-- Returns {outcome, counts}: 1 admitted, -1 the player's key was revoked, -2 a limit was broken.

local counts = count_limits(2, #KEYS - 1, 3)
if counts[1] ~= 0 then return {-2, counts} end
if key_revoked(KEYS[1], ARGV[1], ARGV[2]) then return {-1, counts} end
return {1, counts}
