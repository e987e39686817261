-- lighttpd mod_magnet script (the same in every images/lighttpd-* folder): the contract's
-- report-mode body from lighttpd's own SSL_CLIENT_VERIFY, which the TLS module sets when
-- ssl.verifyclient.activate is on: "SUCCESS", "NONE" (no certificate) or
-- "FAILED:<the module's words>". The reason is that value, unchanged.
-- It also builds the per-connection log line (MTLS_LOG, written by mod_accesslog).
local r = lighty.r
local env = r.req_env

local function json_string(s)
  s = s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == '\\' then return '\\\\' end
    return string.format('\\u%04x', c:byte())
  end)
  return '"' .. s .. '"'
end

local verify = env["SSL_CLIENT_VERIFY"]
local body, subject
if verify == "SUCCESS" then
  body = '{"mTLSValid": true}\n'
  local cn = env["SSL_CLIENT_S_DN_CN"]
  -- (mod_accesslog escapes a double quote, so the CN is written bare.)
  subject = "subject=" .. (cn or "")
else
  verify = verify or "(SSL_CLIENT_VERIFY not set)"
  body = '{"mTLSValid": false, "reason": ' .. json_string(verify) .. '}\n'
  -- lighttpd exports the subject only for a certificate that verified.
  subject = (verify == "NONE") and "subject=none" or "subject=not-exported"
end

env["MTLS_LOG"] = string.format("handshake %s %s authorized=%s verify=%s",
  env["SSL_PROTOCOL"] or "-", subject, tostring(verify == "SUCCESS"), verify)
r.resp_header["Content-Type"] = "application/json"
r.resp_body.set({ body })
return 200
