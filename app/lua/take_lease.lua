-- Take a partition's drain lease for a drain: if it is missing, asked for ('q', or '1' of the
-- previous version) or already this drain's, set it to this drain's value.
--
-- KEYS[1] the lease. ARGV[1] the drain's value ('d:<consumer>'), ARGV[2] the lease's TTL in ms,
-- ARGV[3] when not '', only a lease asked for this long ago at least (ms) is taken (an adoption:
-- its own drain is slow to come).
-- Returns 1 when taken, 0 when another drain holds it (or it was asked for too recently).

local value = redis.call('GET', KEYS[1])
if ARGV[3] ~= '' then
  if value ~= 'q' and value ~= '1' then return 0 end
  if tonumber(ARGV[2]) - redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then return 0 end
elseif value and value ~= 'q' and value ~= '1' and value ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
