-- Delete from a hash the status records moved out of it, each only if the hash still holds the
-- record as it was moved: one rewritten meanwhile is moved by the next run.
--
-- KEYS[1] the hash. ARGV: pairs of submission id and record.
-- Returns how many were deleted.

local deleted = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    deleted = deleted + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return deleted
