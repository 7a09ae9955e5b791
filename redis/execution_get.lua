-- An execution as the status APIs show it: never the code, the seed, the
-- input, nor any header the caller sent.
-- C names: AM_EXECUTION_GET_* in src/am_scripts.h.
--
-- KEYS[1]  execution hash
-- ARGV[1]  automation name the URL names, or ""
--
-- Returns { status, body }.

local e = hash(redis.call('HGETALL', KEYS[1]))

if e.execution_id == nil or (ARGV[1] ~= '' and e.automation ~= ARGV[1]) then
    return detail(404, 'Execution not found')
end

local function num(v)
    if v == nil or v == '' then
        return 'null'
    end
    return v
end

-- every attempt webhook_result.lua kept, oldest first
local function attempt_log()
    local log = {}
    local n = tonumber(e.webhook_attempt_seq or '0')
    while n > 0 and e['webhook_attempt:' .. n] ~= nil do
        table.insert(log, 1, e['webhook_attempt:' .. n])
        n = n - 1
    end
    return '[' .. table.concat(log, ',') .. ']'
end

local webhook = 'null'
if e.webhook ~= nil and e.webhook ~= '' then
    webhook = '{"url":' .. jstr(e.webhook)
        .. ',"state":' .. jstr(e.webhook_state)
        .. ',"attempts":' .. num(e.webhook_attempts)
        .. ',"last_status":' .. num(e.webhook_last_status)
        .. ',"last_error":' .. jstr(e.webhook_last_error ~= ''
                                    and e.webhook_last_error or nil)
        .. ',"next_attempt_at":' .. jstr(e.webhook_next_at ~= ''
                                         and e.webhook_next_at or nil)
        .. ',"attempt_log":' .. attempt_log()
        .. '}'
end

return reply(200, '{"execution_id":' .. jstr(e.execution_id)
    .. ',"project":' .. jstr(e.project)
    .. ',"automation":' .. jstr(e.automation)
    .. ',"status":' .. jstr(e.status)
    .. ',"created_at":' .. jstr(e.created_at)
    .. ',"started_at":' .. jstr(e.started_at)
    .. ',"finished_at":' .. jstr(e.finished_at)
    .. ',"execution_time_ms":' .. num(e.execution_time_ms)
    .. ',"output":' .. jraw(e.output)
    .. ',"error":' .. jstr(e.error ~= '' and e.error or nil)
    .. ',"log":' .. jstr(e.log)
    .. ',"webhook":' .. webhook .. '}')
