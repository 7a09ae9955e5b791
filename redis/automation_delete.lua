-- Deletes an automation.
-- KEYS[1] project hash; ARGV[1] key base; ARGV[2] automation name.
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
