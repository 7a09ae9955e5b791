-- Records one delivery attempt: delivered, to be retried later, or dead
-- (the last attempt failed, the receiver answered 410 Gone, or the address
-- policy refused the URL's addresses).
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
-- ARGV[7]  attempts made before this one, as claimed
-- ARGV[8]  duration of the attempt, ms
-- ARGV[9]  the attempt's unique id
--
-- Returns the attempts made so far.
--
-- A dead letter is also indexed in its project's <prefix>{P}:webhooks:dead
-- (member: the execution id, score: when it died), which lives as long as
-- the longest-lived execution it names, so that a project lists its own
-- without reading those of the others.
--
-- Every attempt is listed in the execution, for its status: the hash field
-- webhook_attempt:<n> holds {attempt, at, duration_ms, status, error}, n
-- counting every attempt ever recorded (webhook_attempt_seq); the last 50
-- are kept. The same attempt recorded twice (a reply lost with the
-- connection) changes nothing the second time. An attempt made under a
-- lease that ran out, after another worker recorded its own, is listed but
-- changes neither the count nor the state, unless it was delivered: the
-- receiver has the delivery then, whatever the other attempt got.

local LOG_MAX = 50

local sec, usec = now()
local now_ms = sec * 1000 + math.floor(usec / 1000)
local project, id = string.match(ARGV[2], '^([^/]+)/(.+)$')
local key = ARGV[1] .. '{' .. (project or '') .. '}:execution:' .. (id or '')
local own = ARGV[1] .. '{' .. (project or '') .. '}:webhooks:dead'

if redis.call('EXISTS', key) == 0 then
    redis.call('ZREM', KEYS[1], ARGV[2])
    redis.call('ZREM', KEYS[2], ARGV[2])
    redis.call('ZREM', own, id or '')
    return 0
end

local before = tonumber(redis.call('HGET', key, 'webhook_attempts') or '0')

if redis.call('HGET', key, 'webhook_attempt_last_id') == ARGV[9] then
    return before
end

local status = tonumber(ARGV[4]) or 0
local duration = tonumber(ARGV[8]) or 0
local seq = redis.call('HINCRBY', key, 'webhook_attempt_seq', 1)

redis.call('HSET', key, 'webhook_attempt_last_id', ARGV[9],
    'webhook_attempt:' .. seq,
    '{"attempt":' .. string.format('%d', (tonumber(ARGV[7]) or 0) + 1)
    .. ',"at":' .. jstr(rfc3339(math.floor((now_ms - duration) / 1000)))
    .. ',"duration_ms":' .. string.format('%d', duration)
    .. ',"status":' .. (status > 0 and string.format('%d', status) or 'null')
    .. ',"error":' .. jstr(ARGV[5] ~= '' and ARGV[5] or nil) .. '}')

if seq > LOG_MAX then
    redis.call('HDEL', key, 'webhook_attempt:' .. (seq - LOG_MAX))
end

if before ~= tonumber(ARGV[7]) and ARGV[3] ~= 'delivered' then
    return before
end

local attempts = redis.call('HINCRBY', key, 'webhook_attempts', 1)
redis.call('HSET', key, 'webhook_last_status', ARGV[4],
    'webhook_last_error', ARGV[5])

if ARGV[3] == 'delivered' then
    redis.call('HSET', key, 'webhook_state', 'delivered',
        'webhook_next_at', '')
    redis.call('ZREM', KEYS[1], ARGV[2])
    redis.call('ZREM', KEYS[2], ARGV[2])
    redis.call('ZREM', own, id)
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
    redis.call('ZADD', own, now_ms, id)

    local ttl = redis.call('PTTL', key)
    if ttl > 0 and ttl > redis.call('PTTL', own) then
        redis.call('PEXPIRE', own, ttl)
    end
end

return attempts
