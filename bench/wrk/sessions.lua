-- POST /sessions with a variant, as the page starts a run, and keep every answer: thread i
-- appends the body of each 201 (a run token with its player's id and key) to the file
-- <prefix>-<i>, one a line. Arguments: the prefix of the files, the variant.
local threads = {}
local out

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

function init(args)
  out = assert(io.open(args[1] .. "-" .. index, "a"))
  wrk.method = "POST"
  wrk.body = string.format('{"variant":"%s"}', args[2])
  wrk.headers["Content-Type"] = "application/json"
end

function response(status, headers, body)
  if status == 201 then
    -- Flushed at once: wrk ends its threads without closing their files.
    out:write((body:gsub("\n", "")), "\n")
    out:flush()
  end
end
