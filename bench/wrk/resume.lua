-- resume: the hot workload's keys, each request asking to close its
-- connection. wrk opens a new connection for the next request on it, and
-- over TLS it offers the session of the last one (wrk reuses its OpenSSL
-- object, which keeps the session), so every request costs a resumed
-- handshake: TLS 1.3 with a pre-shared key and a new key exchange, without
-- the certificate or its signature.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
headers = { ["Connection"] = "close" }
dofile(dir .. "hot.lua")
