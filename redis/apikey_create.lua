-- Stores a new API key of a project (automationsctl apikey create). Only the
-- key's SHA-256 digest reaches Redis; it names the record, so the module
-- finds the key with one HGETALL.
-- C names: AM_APIKEY_CREATE_* in src/am_scripts.h.
--
-- KEYS[1]  <prefix>{P}:project
-- ARGV[1]  the key base <prefix>{P}:
-- ARGV[2]  the project name P
-- ARGV[3]  id (16 hex)
-- ARGV[4]  sha256 (hex digest of the whole key)
-- ARGV[5]  scopes (space-separated subset of read write run admin)
-- ARGV[6]  name (a label, may be empty)
--
-- Returns the id, or the error "project P not found".

local base, project, id, digest, scopes, label =
    ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]

if redis.call('EXISTS', KEYS[1]) == 0 then
    return redis.error_reply('project ' .. project .. ' not found')
end

local index = base .. 'apikeys'
local record = base .. 'apikey:' .. digest

-- random ids and secrets do not collide; refusing keeps a record unique
if redis.call('HEXISTS', index, id) == 1
    or redis.call('EXISTS', record) == 1
then
    return redis.error_reply('api key id or digest already in use, try again')
end

local _, _, created_at = now(true)

redis.call('HSET', record, 'id', id, 'project', project, 'scopes', scopes,
    'name', label, 'created_at', created_at, 'sha256', digest)
redis.call('HSET', index, id, digest)

return id
