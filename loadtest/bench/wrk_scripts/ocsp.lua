-- wrk script for the OCSP benchmark (loadtest/bench_ocsp.py writes the data file it reads).
--
--   wrk -t T ... -s ocsp.lua URL -- <data file> <rate per second, 0 = unpaced> <T> [<first line>]
--   (JPKI_BENCH_PACED=1 in the environment turns the pacing on)
--
-- Data file, one request per line (hex, space separated):
--   get  <path>               <issuerKeyHash TLV> <serial TLV> <status tag>
--   post <DER before nonce>   <DER after nonce>   <issuerKeyHash TLV> <serial TLV> <status tag>
-- A "post" line carries a nonced OCSPRequest split around its 16 nonce octets: every request
-- gets 16 fresh random octets there, so no cache can ever answer it (RFC 9654 section 2.1).
--
-- Every response is checked, not just counted: HTTP 200, OCSPResponse.responseStatus
-- successful (an OCSP error such as tryLater comes with HTTP 200), the certStatus of the
-- CertID it answers equal to the expected one (good 0x80 / revoked 0xA1 / unknown 0x82), and
-- for nonced requests an echoed nonce that was sent and not answered yet.  wrk gives
-- response() no link to its request, so the answered serial and the nonce are read from the
-- response itself.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } jpki_timespec;
  int clock_gettime(int clk_id, jpki_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("jpki_timespec")
local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local function unhex(h)
  if h == "-" then return "" end
  return (h:gsub("..", function(c) return string.char(tonumber(c, 16)) end))
end

-- The start-up probe of wrk.resolve opens a connection and closes it without sending
-- anything; that wedges an `openssl ocsp` responder process (openssl#23934).  Resolve only.
wrk.resolve = function(host, service)
  wrk.addrs = wrk.lookup(host, service)
end

local threads = {}
local counter = 1

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local items, expected, key_tlvs = {}, {}, {}
local n, idx = 0, 0
local mode
local interval, next_at = 0, nil
local sent = {}
local post_headers
checked, bad_http, bad_ocsp, wrong_status, bad_nonce = 0, 0, 0, 0, 0

function init(args)
  local path, rate = args[1], tonumber(args[2] or "0")
  local seen_keys = {}
  for line in io.lines(path) do
    local f = {}
    for word in line:gmatch("%S+") do f[#f + 1] = word end
    if #f > 0 then
      mode = f[1]
      local key, serial, tag
      if mode == "get" then
        items[#items + 1] = wrk.format("GET", unhex(f[2]))
        key, serial, tag = f[3], f[4], f[5]
      else
        items[#items + 1] = { unhex(f[2]), unhex(f[3]) }
        key, serial, tag = f[4], f[5], f[6]
      end
      -- Keyed by issuer key and serial: two CAs' serial ranges may overlap.
      expected[unhex(key) .. unhex(serial)] = tonumber(tag, 16)
      if not seen_keys[key] then
        seen_keys[key] = true
        key_tlvs[#key_tlvs + 1] = unhex(key)
      end
    end
  end
  n = #items
  -- wrk.format() uses wrk.headers (wrk -H) only when given no headers: merge them in.
  post_headers = { ["Content-Type"] = "application/ocsp-request" }
  for name, value in pairs(wrk.headers) do post_headers[name] = value end
  -- Spread the threads over the list, and give each its own random nonces.  args[4], when
  -- given: one thread walks the list from that line (0-based), so the first `requests` lines
  -- are the ones asked (the scale benchmark's RSS run counts distinct serials so).  One step
  -- back: wrk calls request() once before the run to check the script (script_verify_request
  -- in wrk.c) and sends nothing of it, so that call takes the line before the first.
  if args[4] then
    idx = (tonumber(args[4]) - 1) % n
  else
    idx = (id or 1) * 7919 % n
  end
  math.randomseed(math.floor(now_ms() * 1000) % 2147483647 + (id or 1) * 104729)
  -- args[3]: the number of wrk threads, each of which sends its share of the target rate.
  if rate > 0 then
    interval = 1000.0 * tonumber(args[3] or "1") / rate
  end
end

local random, char = math.random, string.char

function request()
  idx = idx % n + 1
  local item = items[idx]
  if mode == "get" then
    return item
  end
  local nonce = char(random(0, 255), random(0, 255), random(0, 255), random(0, 255),
                     random(0, 255), random(0, 255), random(0, 255), random(0, 255),
                     random(0, 255), random(0, 255), random(0, 255), random(0, 255),
                     random(0, 255), random(0, 255), random(0, 255), random(0, 255))
  sent[nonce] = true
  return wrk.format("POST", nil, post_headers, item[1] .. nonce .. item[2])
end

-- Pacing for the "half the maximum rate" runs: each thread hands out send slots `interval`
-- ms apart (wrk waits delay() ms before writing a request on that connection).  wrk only
-- takes whole milliseconds, so slots in the same millisecond leave together: the mean rate
-- is right, the spacing is coarse.  Latency is measured from the write, as wrk always does.
if os.getenv("JPKI_BENCH_PACED") == "1" then
  function delay()
    local now = now_ms()
    if next_at == nil or next_at < now - 50 then
      next_at = now
    end
    next_at = next_at + interval
    local wait = next_at - now
    if wait < 1 then return 0 end
    return math.floor(wait)
  end
end

local NONCE_OID = unhex("06092B0601050507300102")
local find, byte, sub = string.find, string.byte, string.sub

local function answered_status(body)
  -- CertID = SEQUENCE { hashAlgorithm, issuerNameHash, issuerKeyHash, serialNumber } and the
  -- certStatus tag right after it (RFC 6960 section 4.2.1).  Skip a ResponderID byKey equal to
  -- the issuer key hash (CA-signed responses): there no INTEGER follows.
  for _, key in ipairs(key_tlvs) do
    local from = 1
    while true do
      local s, e = find(body, key, from, true)
      if not s then break end
      if byte(body, e + 1) == 0x02 then
        local len = byte(body, e + 2)
        local serial = sub(body, e + 1, e + 2 + len)
        return expected[key .. serial], byte(body, e + 3 + len)
      end
      from = e + 1
    end
  end
  return nil, nil
end

function response(status, headers, body)
  checked = checked + 1
  if status ~= 200 then
    bad_http = bad_http + 1
    return
  end
  -- OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED (successful = 0), ... }
  local hdr = byte(body, 2) or 0
  local off = 3
  if hdr >= 0x80 then off = 3 + (hdr - 0x80) end
  if sub(body, off, off + 2) ~= "\10\1\0" then
    bad_ocsp = bad_ocsp + 1
    return
  end
  local want, got = answered_status(body)
  if want == nil or want ~= got then
    wrong_status = wrong_status + 1
  end
  if mode == "post" then
    local s, e = find(body, NONCE_OID, 1, true)
    -- extnValue OCTET STRING (04 12) wrapping the nonce OCTET STRING (04 10): 16 octets.
    local nonce = s and sub(body, e + 5, e + 20)
    if not nonce or not sent[nonce] then
      bad_nonce = bad_nonce + 1
    else
      sent[nonce] = nil
    end
  end
end

function done(summary, latency, requests)
  local totals = { 0, 0, 0, 0, 0 }
  for _, thread in ipairs(threads) do
    totals[1] = totals[1] + (thread:get("checked") or 0)
    totals[2] = totals[2] + (thread:get("bad_http") or 0)
    totals[3] = totals[3] + (thread:get("bad_ocsp") or 0)
    totals[4] = totals[4] + (thread:get("wrong_status") or 0)
    totals[5] = totals[5] + (thread:get("bad_nonce") or 0)
  end
  io.write(string.format("ocsp_checked=%d bad_http=%d bad_ocsp=%d wrong_status=%d bad_nonce=%d\n",
                         totals[1], totals[2], totals[3], totals[4], totals[5]))
end
