-- Stores a new token pair reaching one or more projects (automationsctl
-- tokenpair create). Only the digests of the token and of the X-Api-Key
-- reach Redis; the token's digest names the record.
-- C names: AM_TOKENPAIR_CREATE_* in src/am_scripts.h.
--
-- KEYS[1]       <prefix>{cred}:tokenpairs
-- KEYS[2..n+1]  <prefix>{P}:project of each project, to check it exists
-- ARGV[1]       the key base <prefix>{cred}:
-- ARGV[2]       id (16 hex)
-- ARGV[3]       sha256 (hex digest of the token)
-- ARGV[4]       api_key_sha256 (hex digest of the X-Api-Key)
-- ARGV[5]       name (a label, may be empty)
-- ARGV[6..n+5]  the project names, in the order of KEYS[2..n+1]
--
-- Returns the id, or the error "project P not found".

local base, id, digest, key_digest, label =
    ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local projects = {}

for i = 2, #KEYS do
    local project = ARGV[i + 4]
    if redis.call('EXISTS', KEYS[i]) == 0 then
        return redis.error_reply('project ' .. project .. ' not found')
    end
    projects[#projects + 1] = project
end

if #projects == 0 then
    return redis.error_reply('a token pair needs at least one project')
end

local record = base .. 'tokenpair:' .. digest

-- random ids and secrets do not collide; refusing keeps a record unique
if redis.call('HEXISTS', KEYS[1], id) == 1
    or redis.call('EXISTS', record) == 1
then
    return redis.error_reply(
        'token pair id or digest already in use, try again')
end

local _, _, created_at = now(true)

redis.call('HSET', record, 'id', id, 'projects', table.concat(projects, ' '),
    'api_key_sha256', key_digest, 'name', label, 'created_at', created_at,
    'sha256', digest)
redis.call('HSET', KEYS[1], id, digest)

return id
