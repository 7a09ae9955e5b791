-- Creates an automation, or replaces it when override is set (keeping
-- created_at). Fields not given on a replace are dropped, as on a PUT.
-- C names: AM_AUTOMATION_CREATE_* in src/am_scripts.h.
--
-- KEYS[1]   project hash <prefix>{P}:project
-- ARGV[1]   key base <prefix>{P}:
-- ARGV[2]   automation name
-- ARGV[3]   "1" to override
-- ARGV[4..] field, value pairs already validated by the caller
--
-- Returns { status, body }.

if redis.call('EXISTS', KEYS[1]) == 0 then
    return detail(404, 'Project not found')
end

local base, name = ARGV[1], ARGV[2]
local key = base .. 'automation:' .. name
local created = redis.call('HGET', key, 'created_at')

if created and ARGV[3] ~= '1' then
    return detail(422, "Automation '" .. name .. "' already exists")
end

local _, _, ts = now(true)
local fields = { 'automation_name', name, 'created_at', created or ts,
    'updated_at', ts }

for i = 4, #ARGV, 2 do
    fields[#fields + 1] = ARGV[i]
    fields[#fields + 1] = ARGV[i + 1]
end

-- the document GET answers, rendered once here rather than on every read
local a = hash(fields)
fields[#fields + 1] = 'document'
fields[#fields + 1] = automation_document(a)

redis.call('DEL', key)
redis.call('HSET', key, unpack(fields))
redis.call('ZADD', base .. 'automations', 0, name)

return reply(200, '{"automation_name":' .. jstr(name)
    .. ',"status":"created","message":"Automation created successfully"}')
