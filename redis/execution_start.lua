-- A worker takes a run from the stream (new, or reclaimed from a worker
-- that died): marks it running and hands over what the run needs.
-- C names: AM_EXECUTION_START_* in src/am_scripts.h.
--
-- KEYS[1]  execution hash
-- ARGV[1]  worker name
-- ARGV[2]  most attempts
-- ARGV[3]  stream entry id (a call repeated after a Redis drop by the same
--          worker for the same entry is not another attempt)
-- ARGV[4]  "held" when the worker has readied the run from its stream
--          entry, which carries what the run needs (and is never that of a
--          run with ddn_headers): "run" then comes alone. Else "".
--
-- Returns { "run", runtime, code, timeout_ms, seed, input, build_id,
--   project, automation, ddn_headers, network, output_schema, preload } |
--   { "run" } (held) |
--   { "gone" } (expired) | { "done" } (finished or cancelled already) |
--   { "exhausted", attempts }

local held = ARGV[4] == 'held'

-- the fields read here only: HGETALL would also copy what an earlier
-- attempt left (its log, its output) into Lua; a held run needs the first
-- four only (the code and the input stay in Redis)
local f
if held then
    f = redis.call('HMGET', KEYS[1], 'execution_id', 'status', 'attempts',
        'claim')
else
    f = redis.call('HMGET', KEYS[1], 'execution_id', 'status', 'attempts',
        'claim', 'runtime', 'code', 'timeout_ms', 'seed', 'input',
        'build_id', 'project', 'automation', 'network', 'output_schema',
        'preload')
end
local e = { execution_id = f[1] or nil, status = f[2] or nil,
    attempts = f[3] or nil, claim = f[4] or nil }

if e.execution_id == nil then
    return { 'gone' }
end

if finished(e.status) then
    return { 'done' }
end

local claim = ARGV[1] .. ' ' .. (ARGV[3] or '')
local attempts = tonumber(e.attempts or '0')

if e.claim ~= claim then
    attempts = attempts + 1
    if attempts > tonumber(ARGV[2]) then
        redis.call('HSET', KEYS[1], 'attempts', attempts, 'claim', claim)
    end
end

if attempts > tonumber(ARGV[2]) then
    return { 'exhausted', attempts - 1 }
end

local _, _, ts = now(true)
redis.call('HSET', KEYS[1], 'attempts', attempts, 'claim', claim,
    'status', 'running', 'started_at', ts, 'worker', ARGV[1])

if held then
    return { 'run' }
end

local ddn = redis.call('HGET', KEYS[1] .. ':secret', 'ddn_headers')

return { 'run', f[5] or 'python', f[6] or '', f[7] or '', f[8] or '',
    f[9] or '', f[10] or '', f[11], f[12], ddn or '', f[13] or '',
    f[14] or '', f[15] or '' }
