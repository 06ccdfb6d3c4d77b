-- Shared by every script that writes or reads a board; prepended to each of them.
--
-- A board is a sorted set: member "<subscore key><achieved ms, 13 digits>:<player id>", score
-- sign * score, so equal scores rank the better subscore, then the earlier achievement, first
-- and every rank is an exact ZRANK. The subscore key is empty in a game without subscores, else
-- 16 digits of sub_sign * subscore + 2^52 (so it sorts as text, and reads back exactly as a
-- Lua number). Its meta hash holds `updated`, `sum` (of its rows' scores), `n` and
-- `t:<bucket>` (entries). A family's players hash holds one record per player,
-- "<name_at>|<tags>|<name>": the name of the player's latest entry (achieved at name_at; of two
-- at the same ms, the greater name), and `;`-separated "<board tag>=<at>" (or
-- "<board tag>=<at>,<subscore key>") for each board the player has a row on, at being that
-- row's achieved ms less the start of the board's period. Callers name each board by its tag
-- (`a`, `d<day>`, `w<week>`, `m<month>`, `s<season>`) and period start: scripts compute no
-- dates.

local SUB_OFFSET = 4503599627370496 -- 2^52
local SUB_MAX = 9007199254740991 -- 2^53 - 1
local KINDS = {'d', 'w', 'm', 's'}

local function member(at, pid, sub)
  return (sub or '') .. string.format('%013d', at) .. ':' .. pid
end

-- The player id of a member.
local function player_of(m)
  return string.match(m, '^%d+:(.*)$')
end

-- The subscore key of a signed subscore total (already multiplied by sub_sign), held within
-- its range.
local function sub_key(value)
  return string.format('%016.0f', math.min(math.max(value + SUB_OFFSET, 0), SUB_MAX))
end

-- The signed value a subscore key stands for (0 for none).
local function sub_value(key)
  if key == '' then
    return 0
  end
  return tonumber(key) - SUB_OFFSET
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

-- A record as a table: {name_at, name, a = all-time spot or nil, d = {day -> spot},
-- w = {week -> spot}, m = {month -> spot}, s = {season -> spot}}, a spot being {rel, sub}: the
-- row's at relative to its period's start and its subscore key ('' if none). Or nil.
local function parse_record(text)
  if not text then
    return nil
  end
  local name_at, tags, name = string.match(text, '^(%d+)|([^|]*)|(.*)$')
  local rec = {name_at = tonumber(name_at), name = name, d = {}, w = {}, m = {}, s = {}}
  for kind, index, rel, sub in string.gmatch(tags, '(%a)(%d*)=(%d+),?(%d*)') do
    local spot = {tonumber(rel), sub}
    if kind == 'a' then
      rec.a = spot
    else
      rec[kind][tonumber(index)] = spot
    end
  end
  return rec
end

local function new_record()
  return {name_at = -1, name = '', d = {}, w = {}, m = {}, s = {}}
end

-- A board tag ('a', 'd<day>', ...) as the kind and index a record is read by.
local function slot_of(tag)
  return string.sub(tag, 1, 1), tonumber(string.sub(tag, 2))
end

local function spot_of(rec, kind, index)
  if kind == 'a' then
    return rec.a
  end
  return rec[kind][index]
end

local function set_spot(rec, kind, index, rel, sub)
  if kind == 'a' then
    rec.a = {rel, sub}
  else
    rec[kind][index] = {rel, sub}
  end
end

-- The name a record shows.
local function name_in(text)
  return string.match(text, '^%d+|[^|]*|(.*)$')
end

-- The record's relative at and subscore key for one board tag, without parsing it all.
local function tag_in(text, tag)
  local tags = ';' .. string.match(text, '^%d+|([^|]*)|') .. ';'
  local rel, sub = string.match(tags, ';' .. tag .. '=(%d+),?(%d*);')
  return rel and tonumber(rel), sub
end

-- Whether a record's text places a row achieved at ms `at` on one of the boards (each
-- {tag = its tag, start = its period's start ms}): such a row shows the metadata of the
-- player's entries at `at`. A record of no such board, or no record, places none.
local function shows_at(text, at, boards)
  local tags = text and string.match(text, '^%d+|([^|]*)|')
  if not tags then
    return false
  end
  tags = ';' .. tags .. ';'
  for _, board in ipairs(boards) do
    local rel = string.match(tags, ';' .. board.tag .. '=(%d+)[;,]')
    if rel and board.start + tonumber(rel) == at then
      return true
    end
  end
  return false
end

-- The groups of boards a compaction script is given from ARGV[first]: the number of boards
-- and, per board, its tag and period start ms; the number of groups and, per group (the
-- readable boards of one set of periods), its size and its boards' numbers (from 1). Board z's
-- key is KEYS[first_key + z - 1] when first_key is given. Returns the groups (each a list of
-- {key, tag, start}) and the number of the argument after them.
local function board_groups(first, first_key)
  local at_arg = first
  local function take()
    at_arg = at_arg + 1
    return ARGV[at_arg - 1]
  end
  local boards = {}
  for z = 1, tonumber(take()) do
    local key = first_key and KEYS[first_key + z - 1]
    boards[z] = {key = key, tag = take(), start = tonumber(take())}
  end
  local groups = {}
  for g = 1, tonumber(take()) do
    local members = {}
    for m = 1, tonumber(take()) do
      members[m] = boards[tonumber(take())]
    end
    groups[g] = members
  end
  return groups, at_arg
end

local function spot_text(spot)
  if spot[2] == '' then
    return spot[1]
  end
  return spot[1] .. ',' .. spot[2]
end

-- Append the tags of one kind of period, in time order, less those older than oldest.
-- (Numbers below 1e14 concatenate as whole numbers: every ms until the year 5138.)
local function add_period_tags(parts, kind, spots, oldest)
  local kept = {}
  for index in pairs(spots) do
    if index >= oldest then
      kept[#kept + 1] = index
    end
  end
  table.sort(kept)
  for _, index in ipairs(kept) do
    parts[#parts + 1] = kind .. index .. '=' .. spot_text(spots[index])
  end
end

-- The oldest readable period of each kind, from four script arguments (day, week, month,
-- season) starting at ARGV[first].
local function horizon_of(args, first)
  local oldest = {}
  for i, kind in ipairs(KINDS) do
    oldest[kind] = tonumber(args[first + i - 1])
  end
  return oldest
end

-- A record's text: tags all-time first, then days, weeks, months and seasons, each in time
-- order, less those of periods older than the horizon's (no longer readable).
local function format_record(rec, oldest)
  local parts = {}
  if rec.a then
    parts[1] = 'a=' .. spot_text(rec.a)
  end
  for _, kind in ipairs(KINDS) do
    add_period_tags(parts, kind, rec[kind], oldest[kind])
  end
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

-- The player's row on a board (its tag as kind and index): its member, sort value, achieved
-- ms and subscore key, or nil. The record says where the row would be; the sorted set, whether
-- it is (an expired board has none).
local function row_of(zkey, pid, rec, kind, index, start)
  local spot = rec and spot_of(rec, kind, index)
  if not spot then
    return nil
  end
  local at = tonumber(start) + spot[1]
  local m = member(at, pid, spot[2])
  local sort = redis.call('ZSCORE', zkey, m)
  if not sort then
    return nil
  end
  return m, tonumber(sort), at, spot[2]
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

-- A board's distinct values (dense ties): values zset member "<sort, %.17g>|<subscore key>",
-- scored by the sort, and the counts hash of its rows per value. vkeys is nil for a game
-- whose ties are not dense.
local function value_of(sort, sub)
  if sort == 0 then
    -- -0 (a zero of a higher-is-better game) is written 0: some servers answer its ZSCORE
    -- "-0", others "0", and the text must be the same when a row leaves as when it came.
    sort = 0
  end
  return string.format('%.17g', sort) .. '|' .. sub
end

local function count_value(vkeys, sort, sub, by)
  local value = value_of(sort, sub)
  local n = redis.call('HINCRBY', vkeys[2], value, by)
  if n <= 0 then
    redis.call('HDEL', vkeys[2], value)
    redis.call('ZREM', vkeys[1], value)
  elseif n == by then
    redis.call('ZADD', vkeys[1], string.format('%.17g', sort), value)
  end
end

-- Whether a row (sort, subscore key, at) ranks before another.
local function ranks_before(sort, sub, at, o_sort, o_sub, o_at)
  if sort ~= o_sort then
    return sort < o_sort
  end
  if sub ~= o_sub then
    return sub_value(sub) < sub_value(o_sub)
  end
  return at < o_at
end

-- Offer an entry to the player's row on a board, by the game's keep rule (rule = {sign, keep,
-- sub_sign}; e = {score = text, sort, sub = signed subscore, at}):
--   best: the entry becomes the row if it ranks before it (entries may arrive in any order,
--         and the board must not depend on it);
--   latest: if it was achieved later, or at the same ms and ranks before it;
--   sum: the row becomes the totals of the scores and subscores, at the latest achievement.
-- The record (a table) takes the row's tag. Returns 1, the row's member and what the board's
-- sum of scores gains; or 0 and the old row's member.
local function place(rule, zkey, vkeys, pid, rec, kind, index, start, e)
  local sign = rule.sign
  local old_member, old_sort, old_at, old_sub = row_of(zkey, pid, rec, kind, index, start)
  local sort, sub, at, text = e.sort, e.sub_key, e.at, sort_text(e.score, sign)
  if old_member then
    if rule.keep == 'sum' then
      sort = old_sort + e.sort
      text = num(sort)
      if rule.sub_sign ~= 0 then
        sub = sub_key(sub_value(old_sub) + sub_value(e.sub_key))
      end
      at = math.max(old_at, e.at)
    elseif rule.keep == 'latest' then
      local earlier = at < old_at
      if earlier or (at == old_at and not ranks_before(sort, sub, 0, old_sort, old_sub, 0)) then
        return 0, old_member
      end
    elseif not ranks_before(sort, sub, at, old_sort, old_sub, old_at) then
      return 0, old_member
    end
    redis.call('ZREM', zkey, old_member)
    if vkeys then
      count_value(vkeys, old_sort, old_sub, -1)
    end
  end
  local m = member(at, pid, sub)
  redis.call('ZADD', zkey, text, m)
  if vkeys then
    count_value(vkeys, sort, sub, 1)
  end
  set_spot(rec, kind, index, at - tonumber(start), sub)
  return 1, m, sign * (sort - (old_sort or 0))
end

-- An entry as place takes it, from its fields as logged (score, at, sub) and the game's rule.
local function entry_of(rule, score, at, sub)
  local e = {score = score, sort = rule.sign * tonumber(score), at = tonumber(at), sub_key = ''}
  if rule.sub_sign ~= 0 then
    e.sub_key = sub_key(rule.sub_sign * (tonumber(sub) or 0))
  end
  return e
end

-- Keep an entry's metadata (JSON text) under its (at, player): of a player's two entries at one
-- ms, the greater text, so that the choice does not depend on arrival order.
local function keep_metadata(emeta, at, pid, meta)
  if not meta or meta == '' then
    return
  end
  local field = string.format('%013d', tonumber(at)) .. ':' .. pid
  local held = redis.call('HGET', emeta, field)
  if not held or bytes_after(meta, held) then
    redis.call('HSET', emeta, field, meta)
  end
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
-- Rows of equal score and equal subscore key share a value: ties = 'competition' shows 1 + the
-- rows of a better value, 'dense' 1 + the better values (the board's values zset holds them:
-- value_of), 'unique' the row's place.

-- The subscore key of a member.
local function subkey_of(m)
  return string.match(m, '^(%d*)%d%d%d%d%d%d%d%d%d%d%d%d%d:')
end

-- The entry metadata field of a member: "<achieved ms, 13 digits>:<player id>".
local function entry_field_of(m)
  return string.match(m, '^%d*(%d%d%d%d%d%d%d%d%d%d%d%d%d:.*)$')
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
    if bytes_after(sub, subkey_of(redis.call('ZRANGE', zkey, mid, mid)[1])) then
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
    if bytes_after(subkey_of(redis.call('ZRANGE', zkey, mid, mid)[1]), sub) then
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
  local rank = redis.call('ZRANK', vkey, value_of(tonumber(sort), sub))
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
    pids[#pids + 1] = player_of(ranked[i])
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
