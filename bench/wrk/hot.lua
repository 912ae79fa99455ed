-- hot: 10,000 session keys; each request carries one chosen at random. The
-- warm-up visits every key, so every measured lookup is a stick-table hit.
-- A script that sets the global path before loading this one asks for that
-- path instead of "/" (large.lua); one that sets the global headers adds
-- those to every request (resume.lua).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local keys = 10000
local requests = {}
local path = path or "/"
local extra = headers or {}

function init(args)
   for i = 1, keys do
      local h = { ["X-Session"] = string.format("hot-%05d", i) }
      for k, v in pairs(extra) do
         h[k] = v
      end
      requests[i] = wrk.format("GET", path, h)
   end
   math.randomseed(os.time())
   -- The warm-up visits the keys in order, from the one after args[2],
   -- so the measured run that follows finds each one in the table.
   sequential = args[1] == "warmup"
   cursor = (tonumber(args[2]) or 0) % keys
end

function request()
   if sequential then
      cursor = cursor % keys + 1
      return requests[cursor]
   end
   return requests[math.random(keys)]
end
