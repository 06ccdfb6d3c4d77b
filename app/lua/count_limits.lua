-- Count one request against its rate limits (see rate_limit_lib.lua).
-- KEYS: the counters; ARGV: allowance and window (ms) of each, in the same order.

return count_limits(1, #KEYS, 1)
