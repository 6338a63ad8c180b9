-- POST /api/keys/redeem, a key never sent before on each request (`-- KEYS SESSIONS`): thread i
-- of T takes keys i, i+T, i+2T... so no two requests of the run send the same key; the members
-- (lines: sessionid, csrftoken) in turn. Past the end of the pool keys repeat and are refused
-- (counted as errors), so the pool is sized above what a run can redeem.
local keys, sessions, n, step

function init(args)
   keys = read_rows(args[1])
   sessions = read_rows(args[2])
   n = id - 1
   step = tonumber(args[3])
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
