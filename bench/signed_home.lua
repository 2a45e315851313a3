-- The patient home page (bench/home.graphql), authenticated, signed or not (bench/signatures.py).
-- BENCH_BODY: a file holding the JSON request body; BENCH_TOKEN: the patient's session token.
-- BENCH_CORPUS (signed runs): a file signatures.py writes just before the run, one request's
-- signature headers per line as "name<TAB>value<TAB>name<TAB>value...", each with its own nonce.
-- BENCH_THREADS: wrk's -t. Thread k takes lines k, k+T, k+2T, ...: no two threads send the same
-- nonce. The requests are built in init(), so request() only hands the next one out. A thread at
-- the end of its share starts again (counted as corpus_wrapped): those requests repeat nonces and
-- come back 401 NONCE_REUSED, which signatures.py reports as a failure.
-- Without BENCH_CORPUS every request is the same unsigned one, sent through the same request().
dofile((os.getenv("BENCH_DIR") or "bench") .. "/report.lua")

outcomes = {}
local requests = {}
local next_index = 1

function init(args)
   local f = assert(io.open(assert(os.getenv("BENCH_BODY"), "BENCH_BODY is not set"), "rb"))
   local body = f:read("*a")
   f:close()
   local token = assert(os.getenv("BENCH_TOKEN"), "BENCH_TOKEN is not set")
   local function base_headers()
      return {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}
   end
   local corpus = os.getenv("BENCH_CORPUS")
   if corpus == nil or corpus == "" then
      table.insert(requests, wrk.format("POST", "/graphql", base_headers(), body))
      return
   end
   local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
   local n = 0
   for line in io.lines(corpus) do
      if n % nthreads == id then
         local headers = base_headers()
         for name, value in string.gmatch(line, "([^\t]+)\t([^\t]+)") do
            headers[name] = value
         end
         table.insert(requests, wrk.format("POST", "/graphql", headers, body))
      end
      n = n + 1
   end
   assert(#requests > 0, "no signed requests for thread " .. id)
end

function request()
   local r = requests[next_index]
   next_index = next_index + 1
   if next_index > #requests then
      next_index = 1
      if #requests > 1 then
         outcomes["corpus_wrapped"] = (outcomes["corpus_wrapped"] or 0) + 1
      end
   end
   return r
end

function response(status, headers, body)
   count_graphql(status, body)
end
