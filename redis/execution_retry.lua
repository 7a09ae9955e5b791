-- Starts a new execution from the snapshot of a finished one: the same
-- code, runtime, timeout, network, output_schema, preload, seed, input,
-- build id and webhook URL, and the caller's headers while the first still
-- holds them (they are dropped once its run and webhook no longer need
-- them). The two records are linked: retry_of in the new one, retried_by
-- (the latest retry) in the first. The new execution is indexed and queued
-- as by execution_enqueue.
-- C names: AM_EXECUTION_RETRY_* in src/am_scripts.h.
--
-- KEYS[1]  execution hash of the execution retried
-- KEYS[2]  the run stream
-- ARGV[1]  key base "<prefix>{P}:"
-- ARGV[2]  automation name the URL names, or ""
-- ARGV[3]  new execution id
-- ARGV[4]  retention seconds
--
-- Returns { status, body }: 202 with the new execution, 404, 409 while the
-- execution has not finished.

local e = hash(redis.call('HGETALL', KEYS[1]))

if e.execution_id == nil or (ARGV[2] ~= '' and e.automation ~= ARGV[2]) then
    return detail(404, 'Execution not found')
end

if not finished(e.status) then
    return detail(409, 'Execution has not finished: ' .. e.status)
end

local base, id = ARGV[1], ARGV[3]
local key = base .. 'execution:' .. id
local _, _, ts = now(true)
local webhook = e.webhook or ''

redis.call('HSET', key,
    'execution_id', id, 'project', e.project, 'automation', e.automation,
    'source', 'retry', 'status', 'queued', 'created_at', ts,
    'runtime', e.runtime or 'python', 'code', e.code or '',
    'timeout_ms', e.timeout_ms or '', 'seed', e.seed or '',
    'input', e.input or '', 'build_id', e.build_id or '', 'attempts', 0,
    'retention', ARGV[4], 'output_schema', e.output_schema or '',
    'preload', e.preload or '', 'network', e.network or 'default',
    'webhook', webhook, 'webhook_state', webhook == '' and 'none' or 'pending',
    'webhook_attempts', 0, 'retry_of', e.execution_id, 'notify', '')
redis.call('EXPIRE', key, tonumber(ARGV[4]))

local held = redis.call('HGETALL', KEYS[1] .. ':secret')
if #held > 0 then
    redis.call('HSET', key .. ':secret', unpack(held))
    redis.call('EXPIRE', key .. ':secret', tonumber(ARGV[4]))
end

redis.call('HSET', KEYS[1], 'retried_by', id)
redis.call('XADD', KEYS[2], '*', 'project', e.project, 'execution_id', id)
execution_index(base, e.automation, id, now_ms(), ARGV[4])

return reply(202, '{"execution_id":' .. jstr(id) .. ',"status":"queued"'
    .. ',"retry_of":' .. jstr(e.execution_id) .. '}')
