-- hot: 10,000 session keys; each request carries one chosen at random, so
-- after the warm-up nearly every lookup is a stick-table hit.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local keys = 10000
local requests = {}

function init(args)
   for i = 1, keys do
      requests[i] = wrk.format("GET", "/", { ["X-Session"] = string.format("hot-%05d", i) })
   end
   math.randomseed(os.time())
end

function request()
   return requests[math.random(keys)]
end
