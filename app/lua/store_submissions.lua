-- Store final status records in the current generation (see app/storage/submissions.py).
--
-- KEYS: the generation's hashes written to. ARGV[1] the ms they have left to live (to the end
-- of the generation plus the idempotency window); then per record the place of its hash in KEYS
-- (from 1), the submission id and the record.
-- A hash is given its TTL when it has none yet: once per hash, not per record. A write that
-- fails (a key of another type) fails alone. Returns "<id>: <error>" for each one that failed.

local ttl = ARGV[1]
local checked = {}
local failed = {}
for i = 2, #ARGV, 3 do
  local key = KEYS[tonumber(ARGV[i])]
  local written = redis.pcall('HSET', key, ARGV[i + 1], ARGV[i + 2])
  if type(written) == 'table' and written.err then
    failed[#failed + 1] = ARGV[i + 1] .. ': ' .. tostring(written.err)
  elseif not checked[key] then
    checked[key] = true
    if redis.call('PTTL', key) == -1 then redis.call('PEXPIRE', key, ttl) end
  end
end
return failed
