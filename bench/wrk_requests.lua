-- Replays pre-signed requests (one per line of the file named by REQUESTS_FILE: method, path,
-- signature, body separated by tabs), each once, in order across all connections.
local requests = {}
local counter = 0

function init(args)
  local file = io.open(os.getenv("REQUESTS_FILE"), "r")
  for line in file:lines() do
    local signature, body = line:match("^([^\t]*)\t(.*)$")
    requests[#requests + 1] = wrk.format("POST", os.getenv("REQUEST_PATH"), {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Twilio-Signature"] = signature,
      ["X-Forwarded-Proto"] = "https",
    }, body)
  end
  file:close()
  -- each thread starts at its own offset so threads do not repeat each other's requests
  counter = (tonumber(args[1]) or 0)
end

function request()
  counter = counter + 1
  return requests[(counter % #requests) + 1]
end

function done(summary, latency, requests_done)
  io.write(string.format("WRK_RESULT %d %d %.3f %.3f %.3f %d\n",
    summary.requests, summary.duration, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
