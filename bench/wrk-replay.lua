-- wrk script: replays a file of signed requests written by
-- `zego-room-tracker send --write-requests FILE` (one per line:
-- PATH <TAB> CONTENT-TYPE <TAB> BODY), each once, in the file's order.
--
--   wrk -t1 -c64 -d10s --latency -s bench/wrk-replay.lua http://127.0.0.1:8080 -- FILE
--
-- So the benchmark drives this service with the client it drives the
-- Node.js reference receiver with (scripts/bench-ingest.sh). One thread
-- (-t1): each thread would replay the whole file, sending every request
-- once per thread. Once the file is used up, every further request goes
-- to /wrk-replay/file-used-up, which answers 404: the run's non-2xx count
-- then shows that the file was too short, rather than retries passing
-- for new callbacks.

local requests = {}
local next_index = 0
local used_up
-- wrk 4.1 calls request() once on the first thread right after init()
-- (script_verify_request, to check the request and count pipelining) and
-- discards what it returns: that call must not use up a line, or the
-- file's first request is never sent.
local verified = false

function init(args)
  local path = assert(args[1], "usage: wrk ... -s wrk-replay.lua URL -- FILE")
  local file = assert(io.open(path, "r"))
  for line in file:lines() do
    local target, content_type, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
    assert(target, "not PATH<TAB>CONTENT-TYPE<TAB>BODY: " .. line:sub(1, 80))
    requests[#requests + 1] = wrk.format("POST", target, { ["Content-Type"] = content_type }, body)
  end
  file:close()
  used_up = wrk.format("POST", "/wrk-replay/file-used-up", {}, "")
end

function request()
  if not verified then
    verified = true
    return requests[1] or used_up
  end
  next_index = next_index + 1
  return requests[next_index] or used_up
end
