-- Find submissions' status records in the generations a lookup reads (see
-- app/storage/submissions.py): each in its bucket's hash of each generation, newest first.
--
-- KEYS: per bucket asked for, its hash in each of ARGV[1] generations, newest first, so that
-- the hash of the j-th bucket (from 0) in the generation `age` back is KEYS[j * n + age + 1].
-- ARGV[1] n; then per submission its id and j.
-- Returns per submission two values: its record and the age of the generation that holds it,
-- or false and -1.

local n = tonumber(ARGV[1])
local reply = {}
for i = 2, #ARGV, 2 do
  local sid, first = ARGV[i], tonumber(ARGV[i + 1]) * n
  local value, at = false, -1
  for age = 0, n - 1 do
    value = redis.call('HGET', KEYS[first + age + 1], sid)
    if value then
      at = age
      break
    end
  end
  reply[#reply + 1] = value
  reply[#reply + 1] = at
end
return reply
