-- Returns one automation as the Automations API shows it.
-- KEYS[1] project hash; ARGV[1] key base; ARGV[2] automation name.
-- Returns { status, body }.

if redis.call('EXISTS', KEYS[1]) == 0 then
    return detail(404, 'Project not found')
end

local a = hash(redis.call('HGETALL', ARGV[1] .. 'automation:' .. ARGV[2]))

if a.automation_name == nil then
    return detail(404, "Automation '" .. ARGV[2] .. "' not found")
end

return reply(200, '{"automation_name":' .. jstr(a.automation_name)
    .. ',"code":' .. jstr(a.code)
    .. ',"input_schema":' .. jraw(a.input_schema)
    .. ',"output_schema":' .. jraw(a.output_schema)
    .. ',"description":' .. jstr(a.description)
    .. ',"runtime":' .. jstr(a.runtime)
    .. ',"timeout_ms":' .. (a.timeout_ms or 'null')
    .. ',"webhook":' .. jstr(a.webhook)
    .. ',"created_at":' .. jstr(a.created_at)
    .. ',"updated_at":' .. jstr(a.updated_at) .. '}')
