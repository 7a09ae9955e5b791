-- Sends a dead-lettered webhook again, from its first attempt.
-- C names: AM_WEBHOOK_RESEND_* in src/am_scripts.h.
--
-- KEYS[1]  execution hash
-- KEYS[2]  webhook schedule
-- KEYS[3]  dead letters
-- KEYS[4]  the project's dead letters, <prefix>{P}:webhooks:dead
-- ARGV[1]  member "<project>/<id>"
--
-- Returns "ok", or an error when the delivery is not dead-lettered.

local state = redis.call('HGET', KEYS[1], 'webhook_state')

if state == false then
    return redis.error_reply('execution not found')
end

if state ~= 'dead' then
    return redis.error_reply('webhook is ' .. state .. ', not dead-lettered')
end

local sec, usec = now()
redis.call('HSET', KEYS[1], 'webhook_state', 'pending', 'webhook_attempts', 0,
    'webhook_last_error', '')
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], string.match(ARGV[1], '/(.*)$') or '')
redis.call('ZADD', KEYS[2], sec * 1000 + math.floor(usec / 1000), ARGV[1])

return 'ok'
