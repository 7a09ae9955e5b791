-- Deletes an API key of a project by id (automationsctl apikey revoke).
-- C names: AM_APIKEY_REVOKE_* in src/am_scripts.h.
--
-- KEYS[1]  <prefix>{P}:project
-- ARGV[1]  the key base <prefix>{P}:
-- ARGV[2]  the project name P
-- ARGV[3]  the key's id
--
-- Returns the id, or the error "api key ID not found in project P".

local base, project, id = ARGV[1], ARGV[2], ARGV[3]
local index = base .. 'apikeys'
local digest = redis.call('HGET', index, id)

if not digest then
    return redis.error_reply('api key ' .. id .. ' not found in project '
        .. project)
end

redis.call('DEL', base .. 'apikey:' .. digest)
redis.call('HDEL', index, id)

return id
