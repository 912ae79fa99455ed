-- large: the hot workload's 10,000 keys, each response a 1 MiB file, so
-- copying bodies outweighs everything else.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local keys = 10000
local requests = {}

function init(args)
   for i = 1, keys do
      requests[i] = wrk.format("GET", "/large/1m.bin", { ["X-Session"] = string.format("hot-%05d", i) })
   end
   math.randomseed(os.time())
end

function request()
   return requests[math.random(keys)]
end
