-- wrk script: replay precomputed, signed Twilio webhooks; every request has its
-- own MessageSid. Usage: wrk ... -s replay.lua <url> -- THREADS FILE
-- FILE holds one request per line: "<X-Twilio-Signature>\t<form body>".
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end

function init(args)
  local threads, file = tonumber(args[1]), args[2]
  requests, position = {}, 0
  local line_no = 0
  for line in io.lines(file) do
    if line_no % threads == tid then
      local signature, body = line:match("^([^\t]*)\t(.*)$")
      requests[#requests + 1] = wrk.format("POST", "/twilio/sms", {
        ["X-Twilio-Signature"] = signature,
        ["Content-Type"] = "application/x-www-form-urlencoded",
      }, body)
    end
    line_no = line_no + 1
  end
end

function request()
  position = position % #requests + 1
  return requests[position]
end
