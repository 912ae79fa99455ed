-- distinct: every request carries a key not seen before (1,000,000 keys,
-- cycling), so each lookup misses, inserts an entry and, once the table is
-- full, evicts one. The first script argument tags the keys so a measured
-- run never repeats its warm-up's keys; each wrk thread has its own range.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local keys = 1000000
local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("id", threads)
end

local prefix
local n = 0
local headers = {}

function init(args)
   prefix = string.format("%s-%d-", args[1] or "run", id or 1)
end

function request()
   n = n % keys + 1
   headers["X-Session"] = prefix .. n
   return wrk.format("GET", "/", headers)
end
