-- A project's Standard Webhooks signing secret: the one in force, or the
-- new one when there is none yet or when rotating. Unlike every other
-- secret here it is stored in clear, in the project hash: it is not checked
-- against what a caller presents but is the HMAC key the workers sign each
-- delivery with, so they need it as it is.
-- C names: AM_WEBHOOK_SECRET_* in src/am_scripts.h.
--
-- KEYS[1]  project hash <prefix>{P}:project
-- ARGV[1]  project name
-- ARGV[2]  new secret "whsec_<base64>"
-- ARGV[3]  "rotate" to replace the secret in force
--
-- Returns the secret in force, or an error when the project does not exist.

if redis.call('EXISTS', KEYS[1]) == 0 then
    return redis.error_reply('project ' .. ARGV[1] .. ' not found')
end

local current = redis.call('HGET', KEYS[1], 'webhook_secret')

if current and current ~= '' and ARGV[3] ~= 'rotate' then
    return current
end

redis.call('HSET', KEYS[1], 'webhook_secret', ARGV[2])
return ARGV[2]
