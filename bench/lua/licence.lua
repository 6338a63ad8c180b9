-- POST /api/license/check by key, each request with a fresh nonce, members in turn (`-- FILE`,
-- lines: key, product, hwid of the machine the key is bound to).
local rows, n

function init(args)
   rows = read_rows(args[1])
   n = id
   math.randomseed(id * 7919 + os.time())
end

function request()
   n = n + 1
   local row = rows[(n % #rows) + 1]
   -- Thread, counter and randomness: unique across the run's threads.
   local nonce = string.format("%04x%012x%08x%08x", id, n, math.random(0, 0x7fffffff),
                               math.random(0, 0x7fffffff))
   local body = string.format(
      "{\"key\":\"%s\",\"product\":\"%s\",\"hwid\":\"%s\",\"nonce\":\"%s\"}",
      row[1], row[2], row[3], nonce)
   return wrk.format("POST", "/api/license/check",
                     {["Content-Type"] = "application/json"}, body)
end
