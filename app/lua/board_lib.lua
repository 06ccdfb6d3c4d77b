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

-- A record as a table: {name_at, name, a = all-time row's at or nil, d = {day -> at},
-- w = {week -> at}} (each at relative to its period's start), or nil.
local function parse_record(text)
  if not text then
    return nil
  end
  local name_at, tags, name = string.match(text, '^(%d+)|([^|]*)|(.*)$')
  local rec = {name_at = tonumber(name_at), name = name, d = {}, w = {}}
  for kind, index, rel in string.gmatch(tags, '(%a)(%d*)=(%d+)') do
    if kind == 'a' then
      rec.a = tonumber(rel)
    else
      rec[kind][tonumber(index)] = tonumber(rel)
    end
  end
  return rec
end

local function new_record()
  return {name_at = -1, name = '', d = {}, w = {}}
end

-- A board tag ('a', 'd<day>', 'w<week>') as the kind and index a record is read by.
local function slot_of(tag)
  return string.sub(tag, 1, 1), tonumber(string.sub(tag, 2))
end

local function rel_of(rec, kind, index)
  if kind == 'a' then
    return rec.a
  end
  return rec[kind][index]
end

local function set_rel(rec, kind, index, rel)
  if kind == 'a' then
    rec.a = rel
  else
    rec[kind][index] = rel
  end
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

-- Append the tags of one kind of period, in time order, less those older than oldest.
-- (Numbers below 1e14 concatenate as whole numbers: every ms until the year 5138.)
local function add_period_tags(parts, kind, rels, oldest)
  local kept = {}
  for index in pairs(rels) do
    if index >= oldest then
      kept[#kept + 1] = index
    end
  end
  table.sort(kept)
  for _, index in ipairs(kept) do
    parts[#parts + 1] = kind .. index .. '=' .. rels[index]
  end
end

-- A record's text: tags all-time first, then days, then weeks, each in time order, less those
-- of days older than oldest_day and weeks older than oldest_week (no longer readable).
local function format_record(rec, oldest_day, oldest_week)
  local parts = {}
  if rec.a then
    parts[1] = 'a=' .. rec.a
  end
  add_period_tags(parts, 'd', rec.d, oldest_day)
  add_period_tags(parts, 'w', rec.w, oldest_week)
  return rec.name_at .. '|' .. table.concat(parts, ';') .. '|' .. rec.name
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

-- The player's row on a board (its tag as kind and index): its member, sort value and achieved
-- ms, or nil. The record says where the row would be; the sorted set, whether it is (an
-- expired board has none).
local function row_of(zkey, pid, rec, kind, index, start)
  local rel = rec and rel_of(rec, kind, index)
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

-- A number as a meta field holds it: 17 significant digits read back exactly (Python's
-- f"{x:.17g}" writes the same text).
local function num(x)
  return string.format('%.17g', x)
end

-- Move a board's sum of scores by gain, and its time of change to now.
local function move_sum(mkey, gain, now)
  local sum = tonumber(redis.call('HGET', mkey, 'sum')) or 0
  redis.call('HSET', mkey, 'sum', num(sum + gain), 'updated', now)
end

-- Count one more entry on a board (`n` and the field of its time bucket) and, when it changed
-- a row (gain not nil), move the sum of scores and the time of change: one read, one write.
-- Returns the new `n`.
local function count_entry(mkey, bucket, gain, now)
  local m = redis.call('HMGET', mkey, 'n', bucket, 'sum')
  local n, t = (tonumber(m[1]) or 0) + 1, (tonumber(m[2]) or 0) + 1
  if gain then
    local sum = (tonumber(m[3]) or 0) + gain
    redis.call('HSET', mkey, 'n', num(n), bucket, num(t), 'sum', num(sum), 'updated', now)
  else
    redis.call('HSET', mkey, 'n', num(n), bucket, num(t))
  end
  return n
end

-- Make (score, at) the player's row on a board unless their row is at least as good; the record
-- (a table) takes the row's tag. Better means a better score, or the same score achieved
-- earlier (entries may arrive in any order, and the board must not depend on it). Returns 1,
-- at and what the board's sum of scores gains, or 0 and the old row's at.
local function offer(zkey, pid, rec, kind, index, start, score, sign, at)
  local sort = sign * tonumber(score)
  local old_member, old_sort, old_at = row_of(zkey, pid, rec, kind, index, start)
  if old_member then
    if sort > old_sort or (sort == old_sort and tonumber(at) >= old_at) then
      return 0, old_at
    end
    redis.call('ZREM', zkey, old_member)
  end
  redis.call('ZADD', zkey, sort_text(score, sign), member(tonumber(at), pid))
  set_rel(rec, kind, index, tonumber(at) - tonumber(start))
  return 1, tonumber(at), tonumber(score) - (old_member and sign * old_sort or 0)
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

-- Reads: shown ranks
--
-- A ranking member is "<subscore key><achieved ms, 13 digits>:<player id>", the key empty in a
-- game without subscores and 17 digits in one with them, and a record's tag for it
-- "<tag>=<rel>" or "<tag>=<rel>,<subscore key>". Rows of equal score and equal subscore key
-- share a value: ties = 'competition' shows 1 + the rows of better value, 'dense' 1 + the
-- better values (the board's values zset, "<%.17g of the sort>|<subscore key>", holds them),
-- 'unique' the row's place.

-- The subscore key of a member.
local function subkey_of(m)
  return string.match(m, '^(%d*)%d%d%d%d%d%d%d%d%d%d%d%d%d:')
end

-- The entry metadata field of a member: "<achieved ms, 13 digits>:<player id>".
local function entry_field_of(m)
  return string.match(m, '^%d*(%d%d%d%d%d%d%d%d%d%d%d%d%d:.*)$')
end

-- The ranking member of the player's row on the board tagged tag (its period starting at
-- start), as the record's text names it, or nil.
local function member_in(text, tag, start, pid)
  local tags = string.match(text, '^%d+|([^|]*)|')
  local spot = tags and string.match(';' .. tags .. ';', ';' .. tag .. '=([%d,]+);')
  if not spot then
    return nil
  end
  local rel, sub = string.match(spot, '^(%d+),?(%d*)$')
  if not rel then
    return nil
  end
  return sub .. string.format('%013d', tonumber(start) + tonumber(rel)) .. ':' .. pid
end

-- Whether subscore key a sorts before b (both of one width), byte by byte: Lua's own < follows
-- the server's locale.
local function key_before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x < y
    end
  end
  return #a < #b
end

-- The place (0-based) of the first row of the value (sort, sub) whose row at index is one:
-- rows of a better sort come first, and among those of the same sort the members order by
-- subscore key, so the first of the key is found by halving [ZCOUNT of better sorts, index].
local function value_first(zkey, index, sort, sub)
  local low = redis.call('ZCOUNT', zkey, '-inf', '(' .. sort)
  if sub == '' then
    return low
  end
  local high = index
  while low < high do
    local mid = math.floor((low + high) / 2)
    if key_before(subkey_of(redis.call('ZRANGE', zkey, mid, mid)[1]), sub) then
      low = mid + 1
    else
      high = mid
    end
  end
  return low
end

-- The place (0-based) of the last row of the value of the row at index.
local function value_last(zkey, index, sort, sub)
  local high = redis.call('ZCOUNT', zkey, '-inf', sort) - 1
  if sub == '' then
    return high
  end
  local low = index
  while low < high do
    local mid = math.floor((low + high + 1) / 2)
    if key_before(sub, subkey_of(redis.call('ZRANGE', zkey, mid, mid)[1])) then
      high = mid - 1
    else
      low = mid
    end
  end
  return low
end

-- The dense rank of the value (sort, sub): 1 + the better values. A value missing from the
-- values zset (a drift that reconcile repairs) is ranked after every better sort.
local function dense_rank(vkey, sort, sub)
  local rank = redis.call('ZRANK', vkey, string.format('%.17g', tonumber(sort)) .. '|' .. sub)
  if rank then
    return rank + 1
  end
  return redis.call('ZCOUNT', vkey, '-inf', '(' .. sort) + 1
end

-- The shown rank of the row at index (member m, sort as Redis answers it).
local function shown_rank(zkey, vkey, ties, index, m, sort)
  if ties == 'competition' then
    return value_first(zkey, index, sort, subkey_of(m)) + 1
  elseif ties == 'dense' then
    return dense_rank(vkey, sort, subkey_of(m))
  end
  return index + 1
end

-- The rows that follow each other on a board from place first, as ZRANGE WITHSCORES answers
-- them, as flat {member, sort, name or false, shown rank[, metadata or false], ...}: the
-- metadata (from the family's hash ekey) only when with_meta is '1'. The first row's rank is
-- worked out; each next one's follows from the row before it.
local function shown_rows(zkey, players, vkey, ekey, ties, with_meta, first, ranked)
  local pids, fields = {}, {}
  for i = 1, #ranked, 2 do
    pids[#pids + 1] = string.match(ranked[i], ':(.*)$')
    fields[#fields + 1] = entry_field_of(ranked[i])
  end
  local texts = records_of(players, pids)
  local metas = {}
  if with_meta == '1' and #fields > 0 then
    metas = redis.call('HMGET', ekey, unpack(fields))
  end
  local rows = {}
  local rank, sort_before, sub_before
  for i = 1, #pids do
    local m, sort = ranked[2 * i - 1], ranked[2 * i]
    local index = first + i - 1
    local sub = subkey_of(m)
    if not rank then
      rank = shown_rank(zkey, vkey, ties, index, m, sort)
    elseif ties == 'unique' then
      rank = index + 1
    elseif tonumber(sort) ~= tonumber(sort_before) or sub ~= sub_before then
      rank = ties == 'dense' and rank + 1 or index + 1
    end
    sort_before, sub_before = sort, sub
    rows[#rows + 1] = m
    rows[#rows + 1] = sort
    rows[#rows + 1] = texts[i] and name_in(texts[i]) or false
    rows[#rows + 1] = rank
    if with_meta == '1' then
      rows[#rows + 1] = metas[i] or false
    end
  end
  return rows
end

-- The rows ranked below the value of the row at index (unique: below the row itself), of
-- total rows.
local function rows_below(zkey, ties, index, m, sort, total)
  if ties == 'unique' then
    return total - index - 1
  end
  return total - value_last(zkey, index, sort, subkey_of(m)) - 1
end
