-- Delete a slice of a family's log entries achieved before a cutoff, with the metadata of
-- those that carried some (every entry sharing its field "<at>:<pid>" is achieved at the same
-- ms, so goes too).
--
-- KEYS[1] log stream, KEYS[2] applied hash, KEYS[3] entry metadata hash. ARGV: XRANGE start ('-' or '(id'), count,
-- cutoff ms. Returns {position, read, deleted}; position as in build_boards.lua.

local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))
local cutoff = tonumber(ARGV[3])
local deleted = 0
for _, entry in ipairs(entries) do
  local e = fields(entry[2])
  if tonumber(e.at) < cutoff then
    redis.call('XDEL', KEYS[1], entry[1])
    redis.call('HDEL', KEYS[2], e.sid)
    if e.meta then
      redis.call('HDEL', KEYS[3], e.at .. ':' .. e.pid)
    end
    deleted = deleted + 1
  end
end
local position = entries[#entries] and entries[#entries][1] or '-'
return {position, #entries, deleted}
