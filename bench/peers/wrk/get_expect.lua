-- wrk script: GET the URL and check EVERY answer: HTTP 200 and a body byte-identical to a
-- file (a response verified beforehand, e.g. with `openssl ocsp -respin ... -CAfile`).
-- Any other answer counts as bad, and wrk exits non-zero at the end if there was one.
--   wrk -t2 -c64 -d8s --latency -s wrk/get_expect.lua URL -- EXPECTED.der
local threads = {}

function wrk.resolve(host, service)
  wrk.addrs = wrk.lookup(host, service)
end

function setup(thread)
  table.insert(threads, thread)
end

local expected
function init(args)
  local f = assert(io.open(args[1], "rb"), "usage: -- EXPECTED_BODY_FILE")
  expected = f:read("*a")
  f:close()
  ok, bad = 0, 0
end

function response(status, headers, body)
  if status == 200 and body == expected then
    ok = ok + 1
  else
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local all_ok, all_bad = 0, 0
  for _, t in ipairs(threads) do
    all_ok = all_ok + t:get("ok")
    all_bad = all_bad + t:get("bad")
  end
  io.write(string.format("checked: %d answers byte-identical to the expected one, %d bad\n",
    all_ok, all_bad))
  if all_bad > 0 or all_ok == 0 then
    os.exit(1)
  end
end
