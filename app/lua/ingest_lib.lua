-- Shared by the scripts that store a new submission (enqueue_submission.lua on a single Redis,
-- admit.lua then enqueue_partition.lua on a cluster); prepended to each.

-- Whether a player's key of generation `shown` has been revoked: the player must show at least
-- the generation the hash `generations` holds for them (none: 0). `player` '' proves nobody.
local function key_revoked(generations, player, shown)
  if player == '' then return false end
  return tonumber(shown) < tonumber(redis.call('HGET', generations, player) or '0')
end

-- Store a new submission in its partition unless its id is taken: its record, its entry on the
-- partition's stream, and the drain lease asked for ('q', NX).
-- KEYS[k0 .. k0+n-1] the id's bucket in the generations a lookup reads, newest first (the first
-- is where a new record is written), KEYS[k0+n] the partition's stream, KEYS[k0+n+1] its lease;
-- ARGV[a0 .. a0+4] the id, its record, the ms the current generation's hashes have left to
-- live, the queued submission (JSON), the lease's TTL in ms.
-- Returns {1, 1} when stored and this call asked for the lease (the caller sends a drain),
-- {1, 0} when stored while a drain is asked for or running, {0, record, age} when the id was
-- taken (age: how many generations back its record was written).
local function store_submission(k0, n, a0)
  local sid = ARGV[a0]
  for age = 0, n - 1 do
    local existing = redis.call('HGET', KEYS[k0 + age], sid)
    if existing then return {0, existing, age} end
  end
  local current = KEYS[k0]
  redis.call('HSET', current, sid, ARGV[a0 + 1])
  if redis.call('PTTL', current) == -1 then redis.call('PEXPIRE', current, ARGV[a0 + 2]) end
  redis.call('XADD', KEYS[k0 + n], '*', 'p', ARGV[a0 + 3])
  if redis.call('SET', KEYS[k0 + n + 1], 'q', 'NX', 'PX', ARGV[a0 + 4]) then return {1, 1} end
  return {1, 0}
end
