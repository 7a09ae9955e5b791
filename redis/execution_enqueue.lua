-- Starts a run: checks the project and the automation, snapshots what the
-- run needs into the execution record, keeps the caller's secrets apart,
-- and adds the stream entry, all or nothing. Honours Idempotency-Key.
-- C names: AM_EXECUTION_ENQUEUE_* in src/am_scripts.h.
--
-- KEYS[1] project hash, KEYS[2] the run stream
-- ARGV[1] key base "<prefix>{P}:"   ARGV[2] project        ARGV[3] automation
-- ARGV[4] execution id              ARGV[5] source (start|run)
-- ARGV[6] retention seconds         ARGV[7] idempotency key digest or ""
-- ARGV[8] request digest            ARGV[9] seed JSON or ""
-- ARGV[10] input JSON or ""         ARGV[11] build id or ""
-- ARGV[12] webhook URL or ""        ARGV[13] webhook headers JSON or ""
-- ARGV[14] ddn_headers JSON or ""
-- ARGV[15] SHA-1 of the input_schema the caller validated the input with
--          ("" for none), after a "!" when the input did not match it
-- ARGV[16] the channel of the gateway's worker that waits for the run (a
--          synchronous run), or "": where its completion is published
--          (field notify). A repeated request (the same idempotency key)
--          adds its own to the first execution's.
--
-- Returns { "ok", id } | { "exists", id } | { "conflict" } |
--         { "no_project" } | { "no_automation" } |
--         { "schema", sha1, input_schema }: the automation's input_schema
--         is not the one of ARGV[15] ("" and "" when it has none); nothing
--         was written, validate with this one and call again |
--         { "invalid" }: the input did not match the schema in force
--
-- The execution is added to the indexes of the project and of the
-- automation that the executions lists read (lib.lua execution_index).
--
-- The stream entry: project and execution_id; for a run whose code, seed,
-- input, schema, preload and build id take at most RUN_IN_ENTRY_MAX bytes
-- and that has no ddn_headers, also runtime, code, timeout_ms, network,
-- seed, input, build_id, automation, output_schema and preload, as
-- execution_start.lua would answer them.

local base, project, name, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local RUN_IN_ENTRY_MAX = 8192

local idem = nil
if ARGV[7] ~= '' then
    idem = base .. 'idempotency:' .. ARGV[7]
    local seen = redis.call('GET', idem)
    if seen then
        if redis.call('EXISTS', KEYS[1]) == 0 then
            return { 'no_project' }
        end
        local first, digest = string.match(seen, '^(%S+) (%S+)$')
        if digest == ARGV[8] then
            local waiter = ARGV[16] or ''
            local record = base .. 'execution:' .. first
            local to = redis.call('HGET', record, 'notify')
            if waiter ~= '' and to and not string.find(' ' .. to .. ' ',
                    ' ' .. waiter .. ' ', 1, true) then
                redis.call('HSET', record, 'notify',
                    to == '' and waiter or to .. ' ' .. waiter)
            end
            return { 'exists', first }
        end
        return { 'conflict' }
    end
end

-- an automation exists only in a project that does (project_delete.lua
-- deletes them with it): the project is looked for only when it does not
local f = redis.call('HMGET', base .. 'automation:' .. name,
    'automation_name', 'runtime', 'code', 'timeout_ms', 'webhook', 'network',
    'input_schema', 'output_schema', 'preload')
if not f[1] then
    if redis.call('EXISTS', KEYS[1]) == 0 then
        return { 'no_project' }
    end
    return { 'no_automation' }
end
local a = { runtime = f[2] or nil, code = f[3] or nil,
    timeout_ms = f[4] or nil, webhook = f[5] or nil, network = f[6] or nil }

-- the input was checked with the schema in force, or the caller is told it
local schema = f[7] or ''
local sha1 = schema ~= '' and redis.sha1hex(schema) or ''
local checked, refused = ARGV[15] or '', false
if string.sub(checked, 1, 1) == '!' then
    checked, refused = string.sub(checked, 2), true
end
if sha1 ~= checked then
    return { 'schema', sha1, schema }
end
if refused then
    return { 'invalid' }
end

local _, _, ts, ms = now(true)
local key = base .. 'execution:' .. id
local webhook = ARGV[12]
if webhook == '' then
    webhook = a.webhook or ''
end

redis.call('HSET', key,
    'execution_id', id, 'project', project, 'automation', name,
    'source', ARGV[5], 'status', 'queued', 'created_at', ts,
    'runtime', a.runtime or 'python', 'code', a.code or '',
    'timeout_ms', a.timeout_ms or '', 'network', a.network or 'default',
    'seed', ARGV[9], 'input', ARGV[10],
    'build_id', ARGV[11], 'attempts', '0', 'retention', ARGV[6],
    'output_schema', f[8] or '', 'preload', f[9] or '',
    'webhook', webhook, 'webhook_state', webhook == '' and 'none' or 'pending',
    'webhook_attempts', '0', 'notify', ARGV[16] or '')
redis.call('EXPIRE', key, ARGV[6])

if ARGV[13] ~= '' or ARGV[14] ~= '' then
    local secret = key .. ':secret'
    redis.call('HSET', secret, 'webhook_header', ARGV[13],
        'ddn_headers', ARGV[14])
    redis.call('EXPIRE', secret, ARGV[6])
end

-- a small run without ddn_headers (a secret, kept out of the stream)
-- travels with its entry too: the worker then readies the run's sandbox
-- while execution_start, which still decides whether it runs, is on its
-- way. The same values as the record's, from the same snapshot.
local runtime, code = a.runtime or 'python', a.code or ''
local output_schema, preload = f[8] or '', f[9] or ''
if ARGV[14] == '' and #code + #ARGV[9] + #ARGV[10] + #output_schema
        + #preload + #ARGV[11] <= RUN_IN_ENTRY_MAX then
    redis.call('XADD', KEYS[2], '*', 'project', project, 'execution_id', id,
        'runtime', runtime, 'code', code, 'timeout_ms', a.timeout_ms or '',
        'network', a.network or 'default', 'seed', ARGV[9],
        'input', ARGV[10], 'build_id', ARGV[11], 'automation', name,
        'output_schema', output_schema, 'preload', preload)
else
    redis.call('XADD', KEYS[2], '*', 'project', project, 'execution_id', id)
end
execution_index(base, name, id, ms, ARGV[6])

-- the key answers with the execution while it can: 24 h, or the retention
-- when shorter, so that it never names an execution that expired
if idem then
    redis.call('SET', idem, id .. ' ' .. ARGV[8], 'EX',
        math.min(86400, tonumber(ARGV[6])))
end

return { 'ok', id }
