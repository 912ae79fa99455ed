-- nokey: requests without the session header: the proxy only balances
-- (round robin) and the stick table is not touched.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

wrk.method = "GET"
wrk.path = "/"
