-- Let go of a partition's drain lease: delete it if it still holds ARGV[1] (a drain's
-- 'd:<consumer>', or 'q' when the drain asked for could not be sent), or, with ARGV[2] = '1'
-- and entries still on the partition's stream, ask for a drain again ('q', TTL ARGV[3] ms): a
-- hand-back, for which the caller sends a drain.
--
-- KEYS[1] the lease, KEYS[2] the partition's stream.
-- Returns 1 when handed back, 0 when released (or held by another, left alone).

if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '1' and redis.call('XLEN', KEYS[2]) > 0 then
  redis.call('SET', KEYS[1], 'q', 'PX', ARGV[3])
  return 1
end
redis.call('DEL', KEYS[1])
return 0
