-- bookAppointment, spread over many patients and slots so that bookings keep succeeding.
-- BENCH_BOOKINGS: a file with one booking per line, "<token>\t<JSON body>", prepared by run.py;
-- BENCH_THREADS: wrk's -t. Thread k takes lines k, k+T, k+2T, ...; at the end of its share it
-- starts again, and the repeats come back as AlreadyRegistered/SlotTaken (counted, not hidden).
dofile((os.getenv("BENCH_DIR") or "bench") .. "/report.lua")

outcomes = {}
local requests = {}
local next_index = 1

function init(args)
   local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
   local path = assert(os.getenv("BENCH_BOOKINGS"), "BENCH_BOOKINGS is not set")
   local n = 0
   for line in io.lines(path) do
      if n % nthreads == id then
         local token, body = string.match(line, "^([^\t]+)\t(.*)$")
         local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}
         table.insert(requests, wrk.format("POST", "/graphql", headers, body))
      end
      n = n + 1
   end
   assert(#requests > 0, "no bookings for thread " .. id)
end

function request()
   local r = requests[next_index]
   next_index = next_index + 1
   if next_index > #requests then
      next_index = 1
      outcomes["list_wrapped"] = (outcomes["list_wrapped"] or 0) + 1
   end
   return r
end

function response(status, headers, body)
   count_graphql(status, body)
end
