-- Cancels an execution that has not finished: it ends `cancelled` here,
-- at once, with its completion published (a synchronous run waiting for it
-- answers) and its webhook scheduled, as execution_complete does. A queued
-- execution never runs: execution_start answers "done" for it. A running
-- one is killed by the worker that holds it, which watches the status of
-- its runs; its completion then changes nothing. Cancel and completion are
-- both scripts that act only on an unfinished execution: exactly one wins.
-- C names: AM_EXECUTION_CANCEL_* in src/am_scripts.h.
--
-- KEYS[1]  execution hash
-- KEYS[2]  webhook schedule <prefix>webhooks
-- ARGV[1]  automation name the URL names, or ""
-- ARGV[2]  completions channel <prefix>completions, of the records
--          without the field notify (lib.lua publish_completion)
--
-- Returns { status, body }: 200 with the execution, 404, 409 when it has
-- finished already.

local e = hash(redis.call('HGETALL', KEYS[1]))

if e.execution_id == nil or (ARGV[1] ~= '' and e.automation ~= ARGV[1]) then
    return detail(404, 'Execution not found')
end

if finished(e.status) then
    return detail(409, 'Execution already finished: ' .. e.status)
end

local sec, usec, ts = now(true)
local member = e.project .. '/' .. e.execution_id

e.status, e.error, e.finished_at = 'cancelled', 'cancelled', ts
redis.call('HSET', KEYS[1], 'status', e.status, 'error', e.error,
    'finished_at', ts)

local secret = KEYS[1] .. ':secret'

if e.webhook ~= nil and e.webhook ~= '' then
    e.webhook_id, e.webhook_state = 'msg_' .. e.execution_id, 'pending'
    redis.call('HSET', KEYS[1], 'webhook_id', e.webhook_id,
        'webhook_state', e.webhook_state)
    redis.call('ZADD', KEYS[2], sec * 1000 + math.floor(usec / 1000), member)
    redis.call('HDEL', secret, 'ddn_headers')
else
    redis.call('DEL', secret)
end

redis.call('EXPIRE', KEYS[1], tonumber(e.retention or '604800'))
publish_completion(e, ARGV[2], member)

return reply(200, execution_document(e, false))
