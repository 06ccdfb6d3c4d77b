-- Delete a slice of a family's log entries achieved before a cutoff.
--
-- KEYS[1] log stream, KEYS[2] applied hash. ARGV: XRANGE start ('-' or '(id'), count,
-- cutoff ms. Returns {position, read, deleted}; position as in build_boards.lua.

local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))
local cutoff = tonumber(ARGV[3])
local deleted = 0
for _, entry in ipairs(entries) do
  local e = fields(entry[2])
  if tonumber(e.at) < cutoff then
    redis.call('XDEL', KEYS[1], entry[1])
    redis.call('HDEL', KEYS[2], e.sid)
    deleted = deleted + 1
  end
end
local position = entries[#entries] and entries[#entries][1] or '-'
return {position, #entries, deleted}
