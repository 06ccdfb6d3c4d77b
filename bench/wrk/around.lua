-- GET a random seeded player's standing with neighbours.
-- Arguments: the path up to the player id, the number of seeded players, K (neighbours).
local path, players, around
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end

function init(args)
  path, players, around = args[1], tonumber(args[2]), args[3] or "5"
  math.randomseed(os.time() * 100 + seed)
end

function request()
  local player = string.format("bench-player-%08d", math.random(0, players - 1))
  return wrk.format("GET", path .. player .. "?around=" .. around)
end
