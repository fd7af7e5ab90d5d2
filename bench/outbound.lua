-- wrk script: POST precomputed JSON bodies to /v1/outbound-sms with a bearer key.
-- Usage: wrk ... -s outbound.lua <url> -- THREADS FILE KEY
-- FILE holds one JSON body per line.
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end

function init(args)
  local threads, file, key = tonumber(args[1]), args[2], args[3]
  requests, position = {}, 0
  local line_no = 0
  for line in io.lines(file) do
    if line_no % threads == tid then
      requests[#requests + 1] = wrk.format("POST", "/v1/outbound-sms", {
        ["Authorization"] = "Bearer " .. key,
        ["Content-Type"] = "application/json",
      }, line)
    end
    line_no = line_no + 1
  end
end

function request()
  position = position % #requests + 1
  return requests[position]
end
