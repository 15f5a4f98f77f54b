-- wrk script for the `filtered_list` scenario of `cargo xtask bench api` (xtask/src/bench/api.rs).
--
-- GET /api/deployments with its filters rotating over every combination of service (or none),
-- environment (or none), status (or none) and two offsets: 240 distinct cached pages, the spread a
-- dashboard in use produces, instead of one hot cache entry. The xtask runs a short warm-up pass
-- of this same script first, so the measured pass is answered from the cache.

local services = { "", "frontend", "api", "worker", "analytics" }
local environments = { "", "dev", "staging", "production" }
local statuses = { "", "pending", "in_progress", "completed", "failed", "rolled_back" }
local offsets = { 0, 10 }

local requests = {}
local next_request = 1

-- Formats every request once per thread, so the measured loop only hands them out.
function init(args)
    for _, service in ipairs(services) do
        for _, environment in ipairs(environments) do
            for _, status in ipairs(statuses) do
                for _, offset in ipairs(offsets) do
                    local query = "offset=" .. offset
                    if service ~= "" then query = query .. "&service=" .. service end
                    if environment ~= "" then query = query .. "&environment=" .. environment end
                    if status ~= "" then query = query .. "&status=" .. status end
                    requests[#requests + 1] = wrk.format("GET", "/api/deployments?" .. query)
                end
            end
        end
    end
end

function request()
    local current = requests[next_request]
    next_request = next_request % #requests + 1
    return current
end
