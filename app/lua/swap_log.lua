-- Put a family's compacted log copy in place of its log, with the entries logged since.
--
-- KEYS[1] log stream, KEYS[2] its copy. ARGV[1] the last log id the compaction judged,
-- ARGV[2] the most entries logged after it that this copies (more: the caller judges on).
-- Returns {1, entries copied} once swapped, {0, 0} when more than ARGV[2] are waiting.

local limit = tonumber(ARGV[2])
local tail = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', limit + 1)
if #tail > limit then
  return {0, 0}
end
for _, entry in ipairs(tail) do
  redis.call('XADD', KEYS[2], entry[1], unpack(entry[2]))
end
-- Ids the log gave must never be given again (an applied id names its entry), so the copy's
-- last id must become the log's. XSETID would do; adding an entry with that id and deleting it
-- does the same on every server this runs on, fakeredis included (its slot stays, marked
-- deleted, until the next compaction copies past it).
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local last
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then
    last = info[i + 1]
  end
end
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if not (top[1] and top[1][1] == last) then
  redis.call('XADD', KEYS[2], last, 'last', '')
  redis.call('XDEL', KEYS[2], last)
end
-- UNLINK frees the old log in the background: a large stream takes a while to free.
redis.call('UNLINK', KEYS[1])
redis.call('RENAME', KEYS[2], KEYS[1])
return {1, #tail}
