-- One project's dead-lettered webhook deliveries, newest first, with what
-- their execution records say of the last attempt. They are read from the
-- project's own index (webhook_result keeps it), so that the dead letters
-- of other projects cost nothing here; members whose execution has expired
-- are dropped from it on the way (their delivery cannot be resent). A call
-- reads at most 1000 members; "truncated" is true when the reply stopped
-- (at the limit or at that bound) before the oldest.
-- C names: AM_WEBHOOK_DEAD_* in src/am_scripts.h.
--
-- KEYS[1]  project hash
-- KEYS[2]  the project's dead letters, <prefix>{P}:webhooks:dead
-- ARGV[1]  key base "<prefix>{P}:"
-- ARGV[2]  most deliveries in the reply
--
-- Returns { status, body }: 200 {"deliveries": [{execution_id, automation,
-- url, dead_since, attempts, last_status, last_error}], "truncated"}; 404
-- when the project does not exist.

local base, limit = ARGV[1], tonumber(ARGV[2])

if redis.call('EXISTS', KEYS[1]) == 0 then
    return detail(404, 'Project not found')
end

local items, read, kept, most, truncated = {}, 0, 0, 1000, false

-- an integer field, or null when absent
local function num(v)
    local n = tonumber(v or '')
    return n and string.format('%d', n) or 'null'
end

while not truncated do
    local batch = redis.call('ZREVRANGE', KEYS[2], kept, kept + 99,
        'WITHSCORES')
    if #batch == 0 then
        break
    end

    local gone = {}

    for i = 1, #batch, 2 do
        local id, ms = batch[i], tonumber(batch[i + 1])
        local e = redis.call('HMGET', base .. 'execution:' .. id,
            'automation', 'webhook', 'webhook_attempts',
            'webhook_last_status', 'webhook_last_error')

        read = read + 1

        if not e[1] then
            gone[#gone + 1] = id

        elseif #items == limit then
            truncated = true
            break

        else
            kept = kept + 1
            items[#items + 1] = '{"execution_id":' .. jstr(id)
                .. ',"automation":' .. jstr(e[1])
                .. ',"url":' .. jstr(e[2])
                .. ',"dead_since":' .. jstr(rfc3339(math.floor(ms / 1000)))
                .. ',"attempts":' .. num(e[3])
                .. ',"last_status":' .. num(e[4])
                .. ',"last_error":' .. jstr(e[5] ~= '' and e[5] or nil)
                .. '}'
        end
    end

    if #gone > 0 then
        redis.call('ZREM', KEYS[2], unpack(gone))
    end

    if not truncated and read >= most then
        truncated = redis.call('ZCARD', KEYS[2]) > kept
        break
    end
end

return reply(200, '{"deliveries":[' .. table.concat(items, ',')
    .. '],"truncated":' .. tostring(truncated) .. '}')
