-- Bare Starlette JSON endpoint: GET /json (run from the repository root).
dofile((os.getenv("BENCH_DIR") or "bench") .. "/report.lua")

wrk.method = "GET"
