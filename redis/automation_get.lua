-- Returns one automation as the Automations API shows it.
-- C names: AM_AUTOMATION_GET_* in src/am_scripts.h.
--
-- KEYS[1]  project hash <prefix>{P}:project
-- ARGV[1]  key base <prefix>{P}:
-- ARGV[2]  automation name
--
-- Returns { status, body }.

if redis.call('EXISTS', KEYS[1]) == 0 then
    return detail(404, 'Project not found')
end

local key = ARGV[1] .. 'automation:' .. ARGV[2]
local document = redis.call('HGET', key, 'document')

if document then
    return reply(200, document)
end

local a = hash(redis.call('HGETALL', key))

if a.automation_name == nil then
    return detail(404, "Automation '" .. ARGV[2] .. "' not found")
end

-- a record written before documents were kept
return reply(200, automation_document(a))
