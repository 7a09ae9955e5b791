-- A project's Standard Webhooks signing secret: the one in force, or a new
-- one when there is none yet or when rotating (or importing). Unlike every
-- other secret here it is stored in clear, in the project hash: it is not
-- checked against what a caller presents but is the HMAC key the workers
-- sign each delivery with, so they need it as it is.
-- The secret it replaces is kept as webhook_secret_previous until
-- webhook_secret_previous_until (ms, Redis clock): until then deliveries
-- carry a signature made with each (webhook_claim.lua), so that receivers
-- can switch to the new secret without refusing a delivery meanwhile.
-- C names: AM_WEBHOOK_SECRET_* in src/am_scripts.h.
--
-- KEYS[1]  project hash <prefix>{P}:project
-- ARGV[1]  project name
-- ARGV[2]  new secret "whsec_<base64>"
-- ARGV[3]  "rotate" to replace the secret in force by ARGV[2]
-- ARGV[4]  how long, in ms, the replaced secret still signs (0: it is
--          dropped at once)
--
-- Returns { secret in force, ms until which the previous secret signs too
-- or 0 }, or an error when the project does not exist.

if redis.call('EXISTS', KEYS[1]) == 0 then
    return redis.error_reply('project ' .. ARGV[1] .. ' not found')
end

local sec, usec = now()
local now_ms = sec * 1000 + math.floor(usec / 1000)
local p = redis.call('HMGET', KEYS[1], 'webhook_secret',
    'webhook_secret_previous_until')
local current = p[1] or ''
local until_ms = tonumber(p[2]) or 0

if until_ms ~= 0 and until_ms <= now_ms then
    redis.call('HDEL', KEYS[1], 'webhook_secret_previous',
        'webhook_secret_previous_until')
    until_ms = 0
end

if current == '' or (ARGV[3] == 'rotate' and ARGV[2] ~= current) then
    local overlap = tonumber(ARGV[4]) or 0

    if current ~= '' and overlap > 0 then
        until_ms = now_ms + overlap
        redis.call('HSET', KEYS[1], 'webhook_secret_previous', current,
            'webhook_secret_previous_until', until_ms)
    else
        redis.call('HDEL', KEYS[1], 'webhook_secret_previous',
            'webhook_secret_previous_until')
        until_ms = 0
    end

    current = ARGV[2]
    redis.call('HSET', KEYS[1], 'webhook_secret', current)
end

return { current, until_ms }
