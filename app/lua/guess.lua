-- Answer one guess of a verified run of the guessing game, and record it, atomically.
--
-- KEYS[1] the run's hash (secret, moves, n, finished; see app/storage/runs.py).
-- ARGV: the guess, now ms, the most guesses the run may take, the epoch ms until which to keep
--       a finished run.
-- Returns {code, guesses answered}: code 1 higher, 2 lower, 0 correct (the run is finished),
-- -1 no such run (never started or expired), -2 already finished, -3 out of guesses.

local secret = redis.call('HGET', KEYS[1], 'secret')
if not secret then
  return {-1, 0}
end
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if redis.call('HEXISTS', KEYS[1], 'finished') == 1 then
  return {-2, n}
end
if n >= tonumber(ARGV[3]) then
  return {-3, n}
end
n = n + 1
local moves = redis.call('HGET', KEYS[1], 'moves') or ''
if moves ~= '' then
  moves = moves .. ','
end
redis.call('HSET', KEYS[1], 'n', n, 'moves', moves .. ARGV[1])
local guess = tonumber(ARGV[1])
secret = tonumber(secret)
if guess == secret then
  redis.call('HSET', KEYS[1], 'finished', ARGV[2])
  redis.call('PEXPIREAT', KEYS[1], ARGV[4])
  return {0, n}
end
if guess < secret then
  return {1, n}
end
return {2, n}
