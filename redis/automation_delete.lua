-- Deletes an automation.
-- C names: AM_AUTOMATION_DELETE_* in src/am_scripts.h.
--
-- KEYS[1]  project hash <prefix>{P}:project
-- ARGV[1]  key base <prefix>{P}:
-- ARGV[2]  automation name
--
-- Returns { status, body }.

if redis.call('EXISTS', KEYS[1]) == 0 then
    return detail(404, 'Project not found')
end

local base, name = ARGV[1], ARGV[2]

if redis.call('DEL', base .. 'automation:' .. name) == 0 then
    return detail(404, "Automation '" .. name .. "' not found")
end

redis.call('ZREM', base .. 'automations', name)

return reply(200, '{"automation_name":' .. jstr(name)
    .. ',"status":"deleted","message":"Automation deleted successfully"}')
