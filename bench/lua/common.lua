-- Shared by every bench script (bench/run.py puts it in front of each): thread numbering, the
-- data file named after `--`, and a JSON summary line the harness parses.
local counter = 1
threads = {}

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

-- Lines of the data file (tab-separated fields), or an empty table without one.
function read_rows(path)
   local rows = {}
   if path == nil or path == "-" then
      return rows
   end
   for line in io.lines(path) do
      local fields = {}
      for field in string.gmatch(line, "[^\t]+") do
         table.insert(fields, field)
      end
      table.insert(rows, fields)
   end
   return rows
end

-- Statuses other than 2xx (a redirect to the login page is a failed request here too), as
-- "code=count " text: thread:get copies strings reliably.
local bad = {}
bad_statuses = ""

function response(status, headers, body)
   if status >= 300 then
      bad[status] = (bad[status] or 0) + 1
      local text = ""
      for code, count in pairs(bad) do
         text = text .. code .. "=" .. count .. " "
      end
      bad_statuses = text
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   local statuses = ""
   for _, thread in ipairs(threads) do
      statuses = statuses .. (thread:get("bad_statuses") or "")
   end
   io.write(string.format(
      "BENCH-RESULT {\"requests\": %d, \"duration_us\": %d, \"connect\": %d, \"read\": %d, "
      .. "\"write\": %d, \"status\": %d, \"timeout\": %d, \"p50_us\": %d, \"p90_us\": %d, "
      .. "\"p99_us\": %d, \"max_us\": %d, \"statuses\": \"%s\"}\n",
      summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, statuses))
end
