-- GET the path given on the command line, with one member's cookies per request in turn when
-- a sessions file is given (`-- FILE`, lines: sessionid, csrftoken); several paths separated by
-- commas are taken in turn.
local rows, paths, n

function init(args)
   rows = read_rows(args[1])
   paths = {}
   for p in string.gmatch(args[2] or "/", "[^,]+") do
      table.insert(paths, p)
   end
   n = id
end

function request()
   n = n + 1
   local headers = {}
   if #rows > 0 then
      local row = rows[(n % #rows) + 1]
      headers["Cookie"] = "sessionid=" .. row[1] .. "; csrftoken=" .. row[2]
   end
   return wrk.format("GET", paths[(n % #paths) + 1], headers)
end
