-- POST a new, valid score per request: no player_id (a new player each time) and no
-- submission_id (the server makes one). Argument: the variant (e.g. 100).
local variant = "100"
local top = 100
local count = 0

function init(args)
  variant = args[1] or variant
  top = tonumber(variant) or top
end

function request()
  count = count + 1
  local body = string.format(
    '{"name":"Bench %d","score":%d,"variant":"%s","duration_ms":60000}',
    count, math.random(1, top), variant)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
