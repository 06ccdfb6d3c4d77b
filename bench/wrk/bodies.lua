-- POST pre-made JSON bodies, each once: thread i reads its own slice, the file <prefix>-<i>,
-- one body a line, and sends its lines in order. A thread that has sent all of its lines
-- starts them again and counts each body sent twice: a run token used twice is refused, so
-- the caller must make enough bodies (and treats a count above 0 as a problem). The report
-- says how many each thread sent, so that the caller knows which bodies are left unsent.
-- Argument: the prefix of the slices' files.
local threads = {}
local bodies = {}
-- Globals, so that done() can read them from each thread (thread:get).
body_count, sent, reused = 0, 0, 0
local headers = {["Content-Type"] = "application/json"}

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1] .. "-" .. index) do
    if line ~= "" then
      bodies[#bodies + 1] = line
    end
  end
  body_count = #bodies
  assert(body_count > 0, "no bodies for thread " .. index)
end

function request()
  sent = sent + 1
  if sent > #bodies then
    reused = reused + 1
  end
  return wrk.format("POST", nil, headers, bodies[(sent - 1) % #bodies + 1])
end

function report_extra()
  local total_sent, total_reused, total_bodies = 0, 0, 0
  local by_thread = {}
  for _, thread in ipairs(threads) do
    total_sent = total_sent + thread:get("sent")
    total_reused = total_reused + thread:get("reused")
    total_bodies = total_bodies + thread:get("body_count")
    by_thread[#by_thread + 1] = tostring(thread:get("sent"))
  end
  return string.format(
    '"bodies":%d,"bodies_sent":%d,"bodies_reused":%d,"sent_by_thread":[%s]',
    total_bodies, total_sent, total_reused, table.concat(by_thread, ","))
end
