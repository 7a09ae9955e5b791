-- Deletes a token pair by id (automationsctl tokenpair revoke).
-- C names: AM_TOKENPAIR_REVOKE_* in src/am_scripts.h.
--
-- KEYS[1]  <prefix>{cred}:tokenpairs
-- ARGV[1]  the key base <prefix>{cred}:
-- ARGV[2]  the pair's id
--
-- Returns the id, or the error "token pair ID not found".

local base, id = ARGV[1], ARGV[2]
local digest = redis.call('HGET', KEYS[1], id)

if not digest then
    return redis.error_reply('token pair ' .. id .. ' not found')
end

redis.call('DEL', base .. 'tokenpair:' .. digest)
redis.call('HDEL', KEYS[1], id)

return id
