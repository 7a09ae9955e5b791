-- Lists a project's automations, sorted by name.
-- C names: AM_AUTOMATION_LIST_* in src/am_scripts.h.
--
-- KEYS[1]  project hash <prefix>{P}:project
-- ARGV[1]  key base <prefix>{P}:
--
-- Returns { status, body }.

if redis.call('EXISTS', KEYS[1]) == 0 then
    return detail(404, 'Project not found')
end

local base = ARGV[1]
local names = redis.call('ZRANGE', base .. 'automations', 0, -1)
local items = {}

for i, name in ipairs(names) do
    local h = redis.call('HMGET', base .. 'automation:' .. name,
        'description', 'created_at', 'updated_at')
    items[i] = '{"automation_name":' .. jstr(name)
        .. ',"description":' .. jstr(h[1])
        .. ',"created_at":' .. jstr(h[2])
        .. ',"updated_at":' .. jstr(h[3]) .. '}'
end

return reply(200, '{"automations":[' .. table.concat(items, ',') .. ']}')
