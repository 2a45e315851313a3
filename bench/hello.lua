-- Out-of-the-box Strawberry: POST /graphql {"query": "{ hello }"}.
dofile((os.getenv("BENCH_DIR") or "bench") .. "/report.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"query": "{ hello }"}'

outcomes = {}
function response(status, headers, body)
   count_graphql(status, body)
end
