-- wrk script for the `single_deployment` scenario of `cargo xtask bench api`
-- (xtask/src/bench/api.rs).
--
-- GET /api/deployments/{id} rotating over the 28 deployments of db/seed.sql, each its own cache
-- entry. The xtask runs a short warm-up pass of this same script first, so the measured pass is
-- answered from the cache.

local seeded_deployments = 28

local requests = {}
local next_request = 1

function init(args)
    for id = 1, seeded_deployments do
        requests[id] = wrk.format("GET", "/api/deployments/" .. id)
    end
end

function request()
    local current = requests[next_request]
    next_request = next_request % #requests + 1
    return current
end
