-- POST /api/keys/redeem, a key never sent before on each request
-- (`-- KEYS SESSIONS THREADS OFFSET`): thread i of T takes keys OFFSET+i, OFFSET+i+T... so no two
-- requests send the same key, and each run starts at its own OFFSET in the pool; the members
-- (lines: sessionid, csrftoken) in turn. Past the end of the pool keys repeat and are refused
-- (counted as errors), so the harness gives each run more keys than it can redeem.
local keys, sessions, n, step

function init(args)
   keys = read_rows(args[1])
   sessions = read_rows(args[2])
   step = tonumber(args[3])
   n = tonumber(args[4]) + id - 1
end

function request()
   local key = keys[(n % #keys) + 1][1]
   local session = sessions[(n % #sessions) + 1]
   n = n + step
   return wrk.format("POST", "/api/keys/redeem", {
      ["Content-Type"] = "application/json",
      ["Cookie"] = "sessionid=" .. session[1] .. "; csrftoken=" .. session[2],
      ["X-CSRFToken"] = session[2],
   }, string.format("{\"key\":\"%s\"}", key))
end
