-- Shared by every scenario: prints one JSON line with the figures run.py records.
-- Scenarios that count GraphQL outcomes keep a per-thread global table `outcomes`
-- (name -> count); setup() keeps the thread handles so done() can merge them.
threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

local function outcome_json()
   local merged = {}
   for _, t in ipairs(threads) do
      local counts = t:get("outcomes")
      if type(counts) == "table" then
         for name, n in pairs(counts) do
            merged[name] = (merged[name] or 0) + n
         end
      end
   end
   local parts = {}
   for name, n in pairs(merged) do
      table.insert(parts, string.format('"%s":%d', name, n))
   end
   return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"stdev":%.1f,"p50":%d,"p75":%d,"p90":%d,"p95":%d,"p99":%d,"p999":%d},' ..
      '"outcomes":%s}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.max, latency.stdev,
      latency:percentile(50), latency:percentile(75), latency:percentile(90),
      latency:percentile(95), latency:percentile(99), latency:percentile(99.9),
      outcome_json()))
end

-- Counts what a GraphQL response says: "errors" present, else the first __typename, else "data".
function count_graphql(status, body)
   local name
   if status < 200 or status > 299 then
      name = "http_" .. status
   elseif string.find(body, '"errors"', 1, true) then
      name = "graphql_errors"
   else
      name = string.match(body, '"__typename":%s*"(%w+)"') or "data"
   end
   outcomes[name] = (outcomes[name] or 0) + 1
end
