-- Helpers shared by every script: embed.pl puts this file in front of each
-- script, so Redis still sees one self-contained script per file.

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

-- days since 1970-01-01 to a civil date (Howard Hinnant's algorithm)
local function civil(days)
    local z = days + 719468
    local era = math.floor(z / 146097)
    local doe = z - era * 146097
    local yoe = math.floor((doe - math.floor(doe / 1460)
        + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
    local y = yoe + era * 400
    local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
    local mp = math.floor((5 * doy + 2) / 153)
    local d = doy - math.floor((153 * mp + 2) / 5) + 1
    local m = mp < 10 and mp + 3 or mp - 9
    if m <= 2 then y = y + 1 end
    return y, m, d
end

local function rfc3339(sec)
    local days = math.floor(sec / 86400)
    local rem = sec - days * 86400
    local y, m, d = civil(days)
    return string.format('%04d-%02d-%02dT%02d:%02d:%02dZ', y, m, d,
        math.floor(rem / 3600), math.floor(rem % 3600 / 60), rem % 60)
end

-- the server's clock, so that every gateway and worker agree
local function now()
    local t = redis.call('TIME')
    local sec = tonumber(t[1])
    return sec, tonumber(t[2]), rfc3339(sec)
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
        .. ',"created_at":' .. jstr(a.created_at)
        .. ',"updated_at":' .. jstr(a.updated_at) .. '}'
end
