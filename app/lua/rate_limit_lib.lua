-- Shared by the scripts that count a request against its rate limits; prepended to each.
--
-- Fixed windows, as the `limits` library counts them: a counter starts its window at its first
-- hit and expires at the window's end. The limits are counted in order and counting stops at
-- the first one the request breaks, so a refused request uses up nothing further down the list.

-- KEYS[k0 + i] is the i-th counter (i from 0), ARGV[a0 + 2i] its allowance and ARGV[a0 + 2i + 1]
-- its window in ms. Returns {breached, count_1, ms_left_1, count_2, ms_left_2, ...}: breached is
-- the 1-based index of the broken limit (0 for none), followed by what was counted.
local function count_limits(k0, n, a0)
  local reply = {0}
  for i = 0, n - 1 do
    local key, window = KEYS[k0 + i], tonumber(ARGV[a0 + 2 * i + 1])
    local count = redis.call('INCR', key)
    local left = window
    if count == 1 then
      redis.call('PEXPIRE', key, window)
    else
      left = redis.call('PTTL', key)
      if left < 0 then  -- a counter left without a TTL would never reset
        redis.call('PEXPIRE', key, window)
        left = window
      end
    end
    reply[#reply + 1] = count
    reply[#reply + 1] = left
    if count > tonumber(ARGV[a0 + 2 * i]) then
      reply[1] = i + 1
      return reply
    end
  end
  return reply
end
