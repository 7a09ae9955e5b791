-- Deletes a project with everything stored under it: its automations and
-- their index, its API keys and their index, the project hash, and its name
-- in the project list (automationsctl project delete).
-- C names: AM_PROJECT_DELETE_* in src/am_scripts.h.
--
-- KEYS[1]  <prefix>{P}:project
-- KEYS[2]  <prefix>projects
-- ARGV[1]  the key base <prefix>{P}:
-- ARGV[2]  the project name P
--
-- Returns the number of keys deleted, or the error "project P not found".

local base, name = ARGV[1], ARGV[2]

if redis.call('EXISTS', KEYS[1]) == 0
    and not redis.call('ZSCORE', KEYS[2], name)
then
    return redis.error_reply('project ' .. name .. ' not found')
end

local automations = base .. 'automations'
local apikeys = base .. 'apikeys'
local deleted = 0

for _, automation in ipairs(redis.call('ZRANGE', automations, 0, -1)) do
    deleted = deleted + redis.call('DEL', base .. 'automation:' .. automation)
end

for _, digest in ipairs(redis.call('HVALS', apikeys)) do
    deleted = deleted + redis.call('DEL', base .. 'apikey:' .. digest)
end

deleted = deleted + redis.call('DEL', automations, apikeys, KEYS[1])
redis.call('ZREM', KEYS[2], name)

return deleted
