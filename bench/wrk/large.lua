-- large: the hot workload's 10,000 keys, each response a 1 MiB file, so
-- copying bodies outweighs everything else.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
path = "/large/1m.bin"
dofile(dir .. "hot.lua")
