-- The patient home page (bench/home.graphql), authenticated.
-- BENCH_BODY: a file holding the JSON request body; BENCH_TOKEN: the patient's session token.
dofile((os.getenv("BENCH_DIR") or "bench") .. "/report.lua")

local f = assert(io.open(assert(os.getenv("BENCH_BODY"), "BENCH_BODY is not set"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. assert(os.getenv("BENCH_TOKEN"), "BENCH_TOKEN is not set")

outcomes = {}
function response(status, headers, body)
   count_graphql(status, body)
end
