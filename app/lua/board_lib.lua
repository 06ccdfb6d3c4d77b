-- Shared by every script that writes a board; prepended to each of them.
--
-- A row is "<achieved ms>|<score>|<name>"; a ranking member is "<achieved ms>:<player id>",
-- so equal scores rank the earlier achievement first and every rank is an exact ZRANK.

local function member(at, pid)
  return at .. ':' .. pid
end

-- The achieved ms of the player's row on a board, or nil.
local function best_at(rkey, pid)
  local row = redis.call('HGET', rkey, pid)
  return row and string.match(row, '^(%d+)|') or nil
end

-- Make (score, at, name) the player's row unless their row is at least as good.
-- Better means a better score, or the same score achieved earlier (entries may arrive in any
-- order, and the board must not depend on it). Returns 1 and at, or 0 and the old row's at.
local function offer(zkey, rkey, pid, name, score, sign, at, now)
  local sort = sign * tonumber(score)
  local old = redis.call('HGET', rkey, pid)
  if old then
    local old_at, old_score = string.match(old, '^(%d+)|([^|]*)|')
    local old_sort = sign * tonumber(old_score)
    if sort > old_sort or (sort == old_sort and tonumber(at) >= tonumber(old_at)) then
      return 0, old_at
    end
    redis.call('ZREM', zkey, member(old_at, pid))
  end
  redis.call('ZADD', zkey, sort, member(at, pid))
  redis.call('HSET', rkey, pid, at .. '|' .. score .. '|' .. name, ':updated', now)
  return 1, at
end

-- The fields of a log entry as a table.
local function fields(flat)
  local t = {}
  for i = 1, #flat, 2 do
    t[flat[i]] = flat[i + 1]
  end
  return t
end
