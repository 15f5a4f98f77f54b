-- wrk script for the `write_mix` scenario of `cargo xtask bench api` (xtask/src/bench/api.rs).
--
-- One request in five records a deployment (POST /api/deployments, authorised with the token
-- the xtask gave the API, passed here in WANDER_BENCH_TOKEN); the other four read the list.
-- Each write invalidates the cached lists, so the reads that follow it miss the cache and go to
-- PostgreSQL: the pattern of a busy deploy day. Services 1-4 and environments 1-3 rotate, all
-- from db/seed.sql, so every write is valid and answered 201.

local token = os.getenv("WANDER_BENCH_TOKEN")
local writes_per_cycle, cycle = 1, 5
local services, environments = 4, 3

local list
local headers
local sent = 0

function init(args)
    if token == nil or token == "" then
        error("WANDER_BENCH_TOKEN is not set: run this through `cargo xtask bench api`")
    end
    list = wrk.format("GET", "/api/deployments")
    headers = {
        ["Content-Type"] = "application/json",
        ["Authorization"] = "Bearer " .. token,
    }
end

function request()
    sent = sent + 1
    if sent % cycle >= writes_per_cycle then
        return list
    end
    local write = math.floor(sent / cycle)
    local body = string.format(
        '{"service_id":%d,"environment_id":%d,"version":"v0.0.%d","deployed_by":"bench@wander.dev"}',
        write % services + 1,
        write % environments + 1,
        write
    )
    return wrk.format("POST", "/api/deployments", headers, body)
end
