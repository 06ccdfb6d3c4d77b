-- Set the entry counts of a family's boards, counted from its whole log, if the log has not
-- grown since they were counted (an entry applied meanwhile counted itself on the boards, and
-- the counts would miss or double it otherwise).
--
-- KEYS[1] log stream, then one meta hash per board. ARGV[1] the log id the counts are of ('-':
-- an empty log); then per board: its expire-at ms (0: never), `updated` to set ('': keep), and
-- how many (field, count) pairs follow, then those pairs. A board's `n` and `t:` fields are
-- replaced by those given. Returns 1 when set, 0 when the log has grown (count again).

local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local head = newest[1] and newest[1][1] or '-'
if head ~= ARGV[1] then
  return 0
end
local a = 2
for k = 2, #KEYS do
  local meta = KEYS[k]
  local expire_at, updated, pairs_n = tonumber(ARGV[a]), ARGV[a + 1], tonumber(ARGV[a + 2])
  a = a + 3
  local stale = {}
  for _, name in ipairs(redis.call('HKEYS', meta)) do
    if name == 'n' or string.sub(name, 1, 2) == 't:' then
      stale[#stale + 1] = name
    end
  end
  if #stale > 0 then
    redis.call('HDEL', meta, unpack(stale))
  end
  local set = {}
  for i = 0, pairs_n - 1 do
    set[#set + 1] = ARGV[a + 2 * i]
    set[#set + 1] = ARGV[a + 2 * i + 1]
  end
  a = a + 2 * pairs_n
  if updated ~= '' then
    set[#set + 1] = 'updated'
    set[#set + 1] = updated
  end
  if #set > 0 then
    redis.call('HSET', meta, unpack(set))
    if expire_at > 0 then
      redis.call('PEXPIREAT', meta, expire_at)
    end
  end
end
return 1
