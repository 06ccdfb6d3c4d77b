-- Delete the fields of a family's entry metadata hash that no readable board shows, atomically
-- against applies (which write fields and move rows).
--
-- A game that keeps a sum keeps every log entry, but a row shows the metadata of one of them
-- only: its member's (at, pid), the player's latest entry of the period. A field "<at>:<pid>"
-- is kept if the player's record places a row at that ms on one of the readable boards of the
-- periods holding `at`, or if the player is banned (an unban ranks their entries again, and
-- their record is gone meanwhile).
--
-- KEYS[1] entry metadata hash, KEYS[2] players hash, KEYS[3] banned set.
-- ARGV: the groups of boards, as board_groups reads them (no keys); then two values per field,
-- the field and its group (the readable boards of its at's periods).
-- Returns the number of fields deleted.

local groups, at_arg = board_groups(1)
local deleted = 0
for i = at_arg, #ARGV, 2 do
  local field, boards = ARGV[i], groups[tonumber(ARGV[i + 1])]
  local at, pid = string.match(field, '^(%d+):(.*)$')
  if
    at
    and redis.call('SISMEMBER', KEYS[3], pid) == 0
    and not shows_at(redis.call('HGET', KEYS[2], pid), tonumber(at), boards)
  then
    deleted = deleted + redis.call('HDEL', KEYS[1], field)
  end
end
return deleted
