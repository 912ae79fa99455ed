-- handshake: the hot workload's keys, each request asking to close its
-- connection. wrk opens a new connection for the next request on it, so over
-- TLS every request costs a full handshake (wrk resumes no sessions).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
headers = { ["Connection"] = "close" }
dofile(dir .. "hot.lua")
