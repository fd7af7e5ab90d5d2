-- wrk script: replay precomputed requests, one per line of FILE.
-- Usage: wrk ... -s replay.lua <url> -- THREADS FILE [KEY]
-- Without KEY, lines are signed Twilio webhooks, "<X-Twilio-Signature>\t<form body>",
-- posted to the URL's path. With KEY, lines are JSON bodies posted with
-- "Authorization: Bearer KEY" (the outbound API).
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end

local function format(line, key)
  if key then
    return wrk.format("POST", nil, {
      ["Authorization"] = "Bearer " .. key,
      ["Content-Type"] = "application/json",
    }, line)
  end
  local signature, body = line:match("^([^\t]*)\t(.*)$")
  return wrk.format("POST", nil, {
    ["X-Twilio-Signature"] = signature,
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, body)
end

function init(args)
  local threads, file, key = tonumber(args[1]), args[2], args[3]
  requests, position = {}, 0
  local line_no = 0
  for line in io.lines(file) do
    if line_no % threads == tid then
      requests[#requests + 1] = format(line, key)
    end
    line_no = line_no + 1
  end
end

function request()
  position = position % #requests + 1
  return requests[position]
end
