-- Takes the webhook deliveries that are due, leasing each for a while so
-- that a worker that dies mid-delivery leaves it to another one.
-- C names: AM_WEBHOOK_CLAIM_* in src/am_scripts.h.
--
-- KEYS[1]  webhook schedule
-- ARGV[1]  key prefix
-- ARGV[2]  lease ms
-- ARGV[3]  most deliveries
--
-- Returns a flat list, 7 items a delivery: member, url, webhook id,
-- attempts so far, body, webhook headers JSON or "", signing secrets or "":
-- the secret in force, then the one it replaced while that still signs
-- (webhook_secret.lua), separated by a space.

local sec, usec = now()
local now_ms = sec * 1000 + math.floor(usec / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0,
    tonumber(ARGV[3]))
local out = {}

local function secrets(project)
    local p = redis.call('HMGET', project, 'webhook_secret',
        'webhook_secret_previous', 'webhook_secret_previous_until')
    local current, previous = p[1] or '', p[2] or ''

    if current ~= '' and previous ~= '' and previous ~= current
        and (tonumber(p[3]) or 0) > now_ms then
        return current .. ' ' .. previous
    end

    return current
end

for _, member in ipairs(due) do
    local project, id = string.match(member, '^([^/]+)/(.+)$')
    local base = ARGV[1] .. '{' .. (project or '') .. '}:'
    local key = base .. 'execution:' .. (id or '')
    local e = hash(redis.call('HGETALL', key))

    if e.execution_id == nil or e.webhook == nil or e.webhook == ''
        or (e.webhook_state ~= 'pending' and e.webhook_state ~= 'retrying') then
        redis.call('ZREM', KEYS[1], member)
    else
        redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), member)

        local body = '{"execution_id":' .. jstr(e.execution_id)
            .. ',"project":' .. jstr(e.project)
            .. ',"automation":' .. jstr(e.automation)
            .. ',"status":' .. jstr(e.status)
            .. ',"output":' .. jraw(e.output)
            .. ',"error":' .. jstr(e.error ~= '' and e.error or nil)
            .. ',"execution_time_ms":' .. (e.execution_time_ms or 'null')
            .. ',"started_at":' .. jstr(e.started_at)
            .. ',"finished_at":' .. jstr(e.finished_at) .. '}'

        out[#out + 1] = member
        out[#out + 1] = e.webhook
        out[#out + 1] = e.webhook_id or ('msg_' .. e.execution_id)
        out[#out + 1] = e.webhook_attempts or '0'
        out[#out + 1] = body
        out[#out + 1] = redis.call('HGET', key .. ':secret', 'webhook_header')
            or ''
        out[#out + 1] = secrets(base .. 'project')
    end
end

return out
