-- Judge one slice of a family's log for compaction, atomically, and copy what it keeps.
--
-- The caller has read the slice and decided what it keeps whatever the boards say (entries
-- applied inside the idempotency window, each player's latest); this judges the others against
-- the boards in the same step as it copies the kept ones, so no apply can come in between.
-- Such an entry is kept if its ranking member "<at>:<pid>" is on one of its readable boards
-- (the player's row there) or its player is banned (an unban ranks their entries again).
--
-- KEYS[1] log stream, KEYS[2] the log's copy (entries kept, same ids, in order), KEYS[3] applied
-- hash, KEYS[4] banned set, KEYS[5] the all-time ranking zset, KEYS[6..] daily and weekly ones.
-- ARGV[1] window start ms: the applied ids of entries logged before it are forgotten.
-- ARGV[2], ARGV[3] the slice as the caller read it: XRANGE start ('-' or '(id') and end id.
-- Then two numbers per entry of the slice, in log order: -1 -1 for an entry kept anyway, else
-- the KEYS index of its daily and of its weekly ranking zset (0: that board is not readable).
-- Returns {applied ids forgotten, dropped log id, dropped log id, ...}.

local entries = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[3])
if #entries * 2 ~= #ARGV - 3 then
  -- Only a compaction removes entries, one at a time under the family lock; the caller's
  -- verdicts would belong to other entries.
  return redis.error_reply('ERR compact_log: the slice is not the one judged')
end
local since = tonumber(ARGV[1])
local result = {0}
local forgotten = 0
for i, entry in ipairs(entries) do
  local id, flat = entry[1], entry[2]
  local e = {}
  for j = 1, #flat, 2 do
    e[flat[j]] = flat[j + 1]
  end
  if tonumber(string.match(id, '^(%d+)')) < since then
    forgotten = forgotten + redis.call('HDEL', KEYS[3], e.sid)
  end
  local daily, weekly = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
  local keep = daily < 0
  if not keep then
    local member = e.at .. ':' .. e.pid
    keep = redis.call('ZSCORE', KEYS[5], member)
      or (daily > 0 and redis.call('ZSCORE', KEYS[daily], member))
      or (weekly > 0 and redis.call('ZSCORE', KEYS[weekly], member))
      or redis.call('SISMEMBER', KEYS[4], e.pid) == 1
  end
  if keep then
    redis.call('XADD', KEYS[2], id, unpack(flat))
  else
    result[#result + 1] = id
  end
end
result[1] = forgotten
return result
