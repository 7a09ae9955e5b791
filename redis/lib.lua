-- Helpers shared by every script: embed.pl puts in front of each script
-- the helpers it names (and those they name), so Redis still sees one
-- self-contained script per file and defines only what it uses. After this
-- head, only "local function"s, each after a blank line.

local function jstr(s)
    if s == nil or s == false then
        return 'null'
    end
    return '"' .. string.gsub(s, '[%c"\\]', function(c)
        if c == '"' then return '\\"' end
        if c == '\\' then return '\\\\' end
        if c == '\n' then return '\\n' end
        if c == '\r' then return '\\r' end
        if c == '\t' then return '\\t' end
        return string.format('\\u%04x', string.byte(c))
    end) .. '"'
end

-- raw JSON text stored by the module (already validated), or null
local function jraw(s)
    if s == nil or s == false or s == '' then
        return 'null'
    end
    return s
end

-- days since 1970-01-01 to a civil date (Howard Hinnant's algorithm). The
-- quotients are (a - a % b) / b: arithmetic of the VM, where math.floor
-- would be a call to C each time.
local function civil(days)
    local z = days + 719468
    local era = (z - z % 146097) / 146097
    local doe = z - era * 146097
    local yoe = doe - (doe - doe % 1460) / 1460 + (doe - doe % 36524) / 36524
        - (doe - doe % 146096) / 146096
    yoe = (yoe - yoe % 365) / 365
    local y = yoe + era * 400
    local doy = doe - (365 * yoe + (yoe - yoe % 4) / 4
        - (yoe - yoe % 100) / 100)
    local mp = (5 * doy + 2 - (5 * doy + 2) % 153) / 153
    local d = doy - (153 * mp + 2 - (153 * mp + 2) % 5) / 5 + 1
    local m = mp < 10 and mp + 3 or mp - 9
    if m <= 2 then y = y + 1 end
    return y, m, d
end

-- whole seconds since the epoch as RFC 3339, UTC
local function rfc3339(sec)
    local rem = sec % 86400
    local y, m, d = civil((sec - rem) / 86400)
    local min = rem % 3600
    return string.format('%04d-%02d-%02dT%02d:%02d:%02dZ', y, m, d,
        (rem - min) / 3600, (min - min % 60) / 60, min % 60)
end

-- The server's clock, so that every gateway and worker agree: seconds and
-- microseconds (numbers), the time as RFC 3339 when stamp is true (else
-- nil: it costs more than the rest), and the milliseconds as a string, a
-- score that goes to Redis without a number turned back into text.
local function now(stamp)
    local t = redis.call('TIME')
    local sec = tonumber(t[1])
    return sec, tonumber(t[2]), stamp and rfc3339(sec) or nil,
        t[1] .. string.sub('00000' .. t[2], -6, -4)
end

local function reply(status, body)
    return { status, body }
end

local function detail(status, message)
    return { status, '{"detail":' .. jstr(message) .. '}' }
end

-- field list of HGETALL as a table
local function hash(flat)
    local h = {}
    for i = 1, #flat, 2 do
        h[flat[i]] = flat[i + 1]
    end
    return h
end

-- an automation as the Automations API shows it, from its hash fields
local function automation_document(a)
    return '{"automation_name":' .. jstr(a.automation_name)
        .. ',"code":' .. jstr(a.code)
        .. ',"input_schema":' .. jraw(a.input_schema)
        .. ',"output_schema":' .. jraw(a.output_schema)
        .. ',"description":' .. jstr(a.description)
        .. ',"runtime":' .. jstr(a.runtime)
        .. ',"timeout_ms":' .. (a.timeout_ms or 'null')
        .. ',"webhook":' .. jstr(a.webhook)
        .. ',"network":' .. jstr(a.network)
        .. ',"preload":' .. jraw(a.preload)
        .. ',"created_at":' .. jstr(a.created_at)
        .. ',"updated_at":' .. jstr(a.updated_at) .. '}'
end

-- whether an execution's status is final
local function finished(status)
    return status == 'success' or status == 'error' or status == 'timed_out'
        or status == 'cancelled'
end

-- A finished execution as the Automations API's run endpoint answers it:
-- { status, body }, 200 on success, 422 when the run failed or timed out.
-- execution_result.lua sends it when asked, execution_complete.lua with the
-- completion: one function, so both answers are the same bytes.
local function execution_result(e)
    local body = '{"output":' .. jraw(e.output)
        .. ',"execution_time_ms":' .. (e.execution_time_ms or 'null')
        .. ',"status":' .. jstr((e.status == 'success'
                                    or e.status == 'cancelled')
                                   and e.status or 'error')

    if e.status ~= 'success' then
        body = body .. ',"error":' .. jstr(e.error ~= '' and e.error
                                           or e.status)
    end

    body = body .. ',"execution_id":' .. jstr(e.execution_id) .. '}'

    return reply(e.status == 'success' and 200 or 422, body)
end

-- Publishes an execution's completion where it is awaited: on the
-- channels of the gateways' workers waiting for it (the record's notify,
-- space-separated; "" when none waits), or on channel when the record has
-- no notify (enqueued by a gateway that listened there only).
local function publish_completion(e, channel, message)
    if e.notify == nil then
        redis.call('PUBLISH', channel, message)
        return
    end
    if not string.find(e.notify, ' ', 1, true) then
        redis.call('PUBLISH', e.notify, message)
        return
    end
    for to in string.gmatch(e.notify, '%S+') do
        redis.call('PUBLISH', to, message)
    end
end

-- the server's clock in milliseconds, as a string: the score of the
-- execution indexes
local function now_ms()
    local _, _, _, ms = now()
    return ms
end

-- Adds an execution to the project's and the automation's indexes (sorted
-- sets scored by creation time in ms, a string), and drops from both what
-- is older than the retention (seconds, a string): the indexes never
-- outgrow the records they list.
local function execution_index(base, name, id, ms, retention)
    local cut = '(' .. string.format('%.0f', tonumber(ms)
        - tonumber(retention) * 1000)
    for _, index in ipairs({ base .. 'executions',
                             base .. 'executions:' .. name }) do
        redis.call('ZADD', index, ms, id)
        redis.call('ZREMRANGEBYSCORE', index, '-inf', cut)
        redis.call('EXPIRE', index, retention)
    end
end

-- an execution as the status APIs show it: never the code, the seed, the
-- input, nor any header the caller sent; the output and log when full
local function execution_document(e, full)
    local function num(v)
        if v == nil or v == '' then
            return 'null'
        end
        return v
    end

    local function opt(v)
        return jstr(v ~= '' and v or nil)
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
            .. ',"last_error":' .. opt(e.webhook_last_error)
            .. ',"next_attempt_at":' .. opt(e.webhook_next_at)
        if full then
            webhook = webhook .. ',"attempt_log":' .. attempt_log()
        end
        webhook = webhook .. '}'
    end

    local progress = nil
    if e.progress_fraction ~= nil then
        progress = '{"fraction":' .. e.progress_fraction
            .. ',"message":' .. jstr(e.progress_message or '') .. '}'
    end

    local doc = '{"execution_id":' .. jstr(e.execution_id)
        .. ',"project":' .. jstr(e.project)
        .. ',"automation":' .. jstr(e.automation)
        .. ',"status":' .. jstr(e.status)
        .. ',"created_at":' .. jstr(e.created_at)
        .. ',"started_at":' .. jstr(e.started_at)
        .. ',"finished_at":' .. jstr(e.finished_at)
        .. ',"execution_time_ms":' .. num(e.execution_time_ms)
        .. ',"error":' .. opt(e.error)

    -- only when there are: the fields of every execution stay the same
    if progress then
        doc = doc .. ',"progress":' .. progress
    end
    for _, link in ipairs({ 'retry_of', 'retried_by' }) do
        if e[link] ~= nil and e[link] ~= '' then
            doc = doc .. ',"' .. link .. '":' .. jstr(e[link])
        end
    end

    if full then
        doc = doc .. ',"output":' .. jraw(e.output) .. ',"log":' .. jstr(e.log)
    end

    return doc .. ',"webhook":' .. webhook .. '}'
end
