-- Records one delivery attempt: delivered, to be retried later, or dead
-- (the last attempt failed, or the receiver answered 410 Gone).
-- C names: AM_WEBHOOK_RESULT_* in src/am_scripts.h.
--
-- KEYS[1]  webhook schedule
-- KEYS[2]  dead letters
-- ARGV[1]  key prefix
-- ARGV[2]  member "<project>/<id>"
-- ARGV[3]  delivered|retry|dead
-- ARGV[4]  HTTP status (0: none)
-- ARGV[5]  error or ""
-- ARGV[6]  delay before the next attempt, ms
--
-- Returns the attempts made so far.

local sec, usec = now()
local now_ms = sec * 1000 + math.floor(usec / 1000)
local project, id = string.match(ARGV[2], '^([^/]+)/(.+)$')
local key = ARGV[1] .. '{' .. (project or '') .. '}:execution:' .. (id or '')

if redis.call('EXISTS', key) == 0 then
    redis.call('ZREM', KEYS[1], ARGV[2])
    redis.call('ZREM', KEYS[2], ARGV[2])
    return 0
end

local attempts = redis.call('HINCRBY', key, 'webhook_attempts', 1)
redis.call('HSET', key, 'webhook_last_status', ARGV[4],
    'webhook_last_error', ARGV[5])

if ARGV[3] == 'delivered' then
    redis.call('HSET', key, 'webhook_state', 'delivered',
        'webhook_next_at', '')
    redis.call('ZREM', KEYS[1], ARGV[2])
    redis.call('DEL', key .. ':secret')

elseif ARGV[3] == 'retry' then
    local next_ms = now_ms + tonumber(ARGV[6])
    redis.call('HSET', key, 'webhook_state', 'retrying',
        'webhook_next_at', rfc3339(math.floor(next_ms / 1000)))
    redis.call('ZADD', KEYS[1], next_ms, ARGV[2])

else
    redis.call('HSET', key, 'webhook_state', 'dead', 'webhook_next_at', '')
    redis.call('ZREM', KEYS[1], ARGV[2])
    redis.call('ZADD', KEYS[2], now_ms, ARGV[2])
end

return attempts
