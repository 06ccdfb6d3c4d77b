-- Judge one slice of a family's log for compaction, atomically, and copy what it keeps.
--
-- The caller has read the slice and decided what it keeps whatever the boards say (entries
-- applied inside the idempotency window, each player's latest); this judges the others against
-- the boards in the same step as it copies the kept ones, so no apply can come in between.
-- Such an entry is kept if its ranking member "<subscore key><at>:<pid>" is on one of its
-- readable boards (the player's row there) or its player is banned (an unban ranks their
-- entries again). An entry dropped that carried metadata deletes its field "<at>:<pid>" of the
-- entry metadata hash, unless a kept entry of the slice has the same field or the player's
-- record places a row of theirs at that ms on one of the entry's readable boards.
--
-- KEYS[1] log stream, KEYS[2] the log's copy (entries kept, same ids, in order), KEYS[3] applied
-- hash, KEYS[4] banned set, KEYS[5] entry metadata hash, KEYS[6] players hash, KEYS[7..] the
-- ranking zsets of the slice's readable boards.
-- ARGV[1] window start ms: the applied ids of entries logged before it are forgotten.
-- ARGV[2], ARGV[3] the slice as the caller read it: XRANGE start ('-' or '(id') and end id.
-- Then the groups of the slice's readable boards, as board_groups reads them (board z is the
-- zset KEYS[6 + z]); then two values per entry of the slice, in log order: its group (0 for an
-- entry kept anyway) and its subscore key ('' in a game without subscores).
-- Returns {applied ids forgotten, metadata fields deleted, dropped log id, dropped log id, ...}.

local since = tonumber(ARGV[1])
local groups, at_arg = board_groups(4, 7)

local entries = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[3])
if #entries * 2 ~= #ARGV - at_arg + 1 then
  -- Only a compaction removes entries, one at a time under the family lock; the caller's
  -- verdicts would belong to other entries.
  return redis.error_reply('ERR compact_log: the slice is not the one judged')
end

local result = {0, 0}
local forgotten, metadata_dropped = 0, 0
local kept_fields, dropped_meta = {}, {}
for i, entry in ipairs(entries) do
  local id, flat = entry[1], entry[2]
  local e = fields(flat)
  if tonumber(string.match(id, '^(%d+)')) < since then
    forgotten = forgotten + redis.call('HDEL', KEYS[3], e.sid)
  end
  local group, sub_key = tonumber(ARGV[at_arg + 2 * i - 2]), ARGV[at_arg + 2 * i - 1]
  local keep = group == 0
  if not keep then
    local member = sub_key .. e.at .. ':' .. e.pid
    for _, board in ipairs(groups[group]) do
      if redis.call('ZSCORE', board.key, member) then
        keep = true
        break
      end
    end
    keep = keep or redis.call('SISMEMBER', KEYS[4], e.pid) == 1
  end
  local field = e.at .. ':' .. e.pid
  if keep then
    redis.call('XADD', KEYS[2], id, unpack(flat))
    kept_fields[field] = true
  else
    result[#result + 1] = id
    if e.meta then
      dropped_meta[#dropped_meta + 1] = {field, e.pid, tonumber(e.at), groups[group]}
    end
  end
end
for _, dropped in ipairs(dropped_meta) do
  local field, pid, at, boards = unpack(dropped)
  if not kept_fields[field] and not shows_at(redis.call('HGET', KEYS[6], pid), at, boards) then
    metadata_dropped = metadata_dropped + redis.call('HDEL', KEYS[5], field)
  end
end
result[1], result[2] = forgotten, metadata_dropped
return result
