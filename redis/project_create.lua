-- Creates a project unless it exists (automationsctl project create).
-- C names: AM_PROJECT_CREATE_* in src/am_scripts.h.
--
-- KEYS[1]  <prefix>{P}:project
-- KEYS[2]  <prefix>projects
-- ARGV[1]  the key base <prefix>{P}:
-- ARGV[2]  the project name P
--
-- Returns P, or the error "project P exists".

local name = ARGV[2]

if redis.call('EXISTS', KEYS[1]) == 1
    or redis.call('ZSCORE', KEYS[2], name)
then
    return redis.error_reply('project ' .. name .. ' exists')
end

local _, _, created_at = now(true)

redis.call('HSET', KEYS[1], 'name', name, 'created_at', created_at)
redis.call('ZADD', KEYS[2], 0, name)

return name
