-- Shared by every script that writes or reads a board; prepended to each of them.
--
-- A board is a sorted set: member "<achieved ms, 13 digits>:<player id>", score sign * score,
-- so equal scores rank the earlier achievement first and every rank is an exact ZRANK. Its
-- meta hash holds `updated`, `sum` (of its rows' scores), `n` and `t:<bucket>` (entries).
-- A family's players hash holds one record per player, "<name_at>|<tags>|<name>": the name of
-- the player's latest entry (achieved at name_at; of two at the same ms, the greater name), and
-- `;`-separated "<board tag>=<at>" for each board the player has a row on, at being that row's
-- achieved ms less the start of the board's period. Callers name each board by its tag (`a`,
-- `d<day>`, `w<week>`) and period start: scripts compute no dates.

local function member(at, pid)
  return string.format('%013d', at) .. ':' .. pid
end

-- The player id of a member.
local function player_of(m)
  return string.match(m, '^%d+:(.*)$')
end

-- The sorted-set score of a score's text, as text: a float is passed on exactly as written
-- (a Lua number would be formatted with 14 digits).
local function sort_text(score, sign)
  if sign == 1 then
    return score
  elseif string.sub(score, 1, 1) == '-' then
    return string.sub(score, 2)
  end
  return '-' .. score
end

-- A record as a table {name_at, tags = {tag -> relative at}, name}, or nil.
local function parse_record(text)
  if not text then
    return nil
  end
  local name_at, tags, name = string.match(text, '^(%d+)|([^|]*)|(.*)$')
  local rec = {name_at = tonumber(name_at), name = name, tags = {}}
  for tag, rel in string.gmatch(tags, '(%w+)=(%d+)') do
    rec.tags[tag] = tonumber(rel)
  end
  return rec
end

-- The name a record shows.
local function name_in(text)
  return string.match(text, '^%d+|[^|]*|(.*)$')
end

-- The record's relative at for one board tag, without parsing it all.
local function tag_in(text, tag)
  local rel = string.match(';' .. string.match(text, '^%d+|([^|]*)|') .. ';', ';' .. tag .. '=(%d+);')
  return rel and tonumber(rel)
end

local function tag_order(tag)
  local kind = string.sub(tag, 1, 1)
  return (kind == 'a' and 0 or kind == 'd' and 1 or 2), tonumber(string.sub(tag, 2)) or 0
end

-- A record's text: tags all-time first, then days, then weeks, each in time order, less those
-- of days older than oldest_day and weeks older than oldest_week (no longer readable).
local function format_record(rec, oldest_day, oldest_week)
  local kept = {}
  for tag, rel in pairs(rec.tags) do
    local kind, n = tag_order(tag)
    if not ((kind == 1 and n < oldest_day) or (kind == 2 and n < oldest_week)) then
      kept[#kept + 1] = {kind, n, tag .. '=' .. string.format('%d', rel)}
    end
  end
  table.sort(kept, function(x, y)
    return x[1] < y[1] or (x[1] == y[1] and x[2] < y[2])
  end)
  local parts = {}
  for i, t in ipairs(kept) do
    parts[i] = t[3]
  end
  return string.format('%d', rec.name_at) .. '|' .. table.concat(parts, ';') .. '|' .. rec.name
end

-- Whether a sorts after b byte by byte (Lua's own < follows the server's locale).
local function bytes_after(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x > y
    end
  end
  return #a > #b
end

-- Make an entry's name the record's if the entry is the player's latest (or equally late with
-- a greater name), so that the name does not depend on the order entries are applied in.
local function take_name(rec, name, at)
  at = tonumber(at)
  if at > rec.name_at or (at == rec.name_at and bytes_after(name, rec.name)) then
    rec.name_at, rec.name = at, name
  end
end

-- The player's row on a board: its member, sort value and achieved ms, or nil. The record says
-- where the row would be; the sorted set, whether it is (an expired board has none).
local function row_of(zkey, pid, rec, tag, start)
  local rel = rec and rec.tags[tag]
  if not rel then
    return nil
  end
  local at = tonumber(start) + rel
  local m = member(at, pid)
  local sort = redis.call('ZSCORE', zkey, m)
  if not sort then
    return nil
  end
  return m, tonumber(sort), at
end

local function add_to_sum(mkey, amount)
  redis.call('HINCRBYFLOAT', mkey, 'sum', string.format('%.17g', amount))
end

-- Make (score, at) the player's row on a board unless their row is at least as good; the record
-- (a table) takes the row's tag. Better means a better score, or the same score achieved
-- earlier (entries may arrive in any order, and the board must not depend on it). The meta
-- hash's sum follows. Returns 1 and at, or 0 and the old row's at.
local function offer(zkey, mkey, pid, rec, tag, start, score, sign, at, now)
  local sort = sign * tonumber(score)
  local old_member, old_sort, old_at = row_of(zkey, pid, rec, tag, start)
  if old_member then
    if sort > old_sort or (sort == old_sort and tonumber(at) >= old_at) then
      return 0, old_at
    end
    redis.call('ZREM', zkey, old_member)
  end
  redis.call('ZADD', zkey, sort_text(score, sign), member(tonumber(at), pid))
  rec.tags[tag] = tonumber(at) - tonumber(start)
  add_to_sum(mkey, tonumber(score) - (old_member and sign * old_sort or 0))
  redis.call('HSET', mkey, 'updated', now)
  return 1, tonumber(at)
end

-- The records of some players (false for those without one), a few hundred per HMGET.
local function records_of(players, pids)
  local found = {}
  for first = 1, #pids, 500 do
    local chunk = {}
    for i = first, math.min(first + 499, #pids) do
      chunk[#chunk + 1] = pids[i]
    end
    for _, text in ipairs(redis.call('HMGET', players, unpack(chunk))) do
      found[#found + 1] = text
    end
  end
  return found
end

-- ZRANGE WITHSCORES of a board as flat {member, sort, name or false, ...}.
local function rows_of(zkey, players, first, last)
  local ranked = redis.call('ZRANGE', zkey, first, last, 'WITHSCORES')
  local pids = {}
  for i = 1, #ranked, 2 do
    pids[#pids + 1] = player_of(ranked[i])
  end
  local texts = records_of(players, pids)
  local rows = {}
  for i = 1, #pids do
    rows[#rows + 1] = ranked[2 * i - 1]
    rows[#rows + 1] = ranked[2 * i]
    rows[#rows + 1] = texts[i] and name_in(texts[i]) or false
  end
  return rows
end

-- The fields of a log entry as a table.
local function fields(flat)
  local t = {}
  for i = 1, #flat, 2 do
    t[flat[i]] = flat[i + 1]
  end
  return t
end
