-- One project's dead-lettered webhook deliveries, newest first, with what
-- their execution records say of the last attempt. The dead letters of all
-- projects share one sorted set (member "<project>/<id>"): a call reads at
-- most 1000 of its members, newest first, so that a project with few dead
-- letters among many answers in bounded time; "truncated" is true when
-- the reply stopped (at the limit or at that bound) before the oldest.
-- C names: AM_WEBHOOK_DEAD_* in src/am_scripts.h.
--
-- KEYS[1]  project hash
-- KEYS[2]  the dead letters, <prefix>webhooks:dead
-- ARGV[1]  key base "<prefix>{P}:"
-- ARGV[2]  project name P
-- ARGV[3]  most deliveries in the reply
--
-- Returns { status, body }: 200 {"deliveries": [{execution_id, automation,
-- url, dead_since, attempts, last_status, last_error}], "truncated"}, with
-- automation and url null once the execution has expired; 404 when the
-- project does not exist.

local base, mine, limit = ARGV[1], ARGV[2] .. '/', tonumber(ARGV[3])

if redis.call('EXISTS', KEYS[1]) == 0 then
    return detail(404, 'Project not found')
end

local items, read, most, truncated = {}, 0, 1000, false

-- an integer field, or null when absent
local function num(v)
    local n = tonumber(v or '')
    return n and string.format('%d', n) or 'null'
end

while true do
    local batch = redis.call('ZREVRANGE', KEYS[2], read, read + 99,
        'WITHSCORES')
    if #batch == 0 then
        break
    end

    for i = 1, #batch, 2 do
        local member, ms = batch[i], tonumber(batch[i + 1])
        local id = nil

        if string.sub(member, 1, #mine) == mine then
            id = string.match(string.sub(member, #mine + 1), '^(exec_%x+)$')
        end

        if id then
            if #items == limit then
                truncated = true
                break
            end

            local e = redis.call('HMGET', base .. 'execution:' .. id,
                'automation', 'webhook', 'webhook_attempts',
                'webhook_last_status', 'webhook_last_error')

            items[#items + 1] = '{"execution_id":' .. jstr(id)
                .. ',"automation":' .. jstr(e[1])
                .. ',"url":' .. jstr(e[2])
                .. ',"dead_since":' .. jstr(rfc3339(math.floor(ms / 1000)))
                .. ',"attempts":' .. num(e[3])
                .. ',"last_status":' .. num(e[4])
                .. ',"last_error":' .. jstr(e[5] ~= '' and e[5] or nil) .. '}'
        end
    end

    read = read + #batch / 2

    if truncated then
        break
    end

    if read >= most then
        truncated = redis.call('ZCARD', KEYS[2]) > read
        break
    end
end

return reply(200, '{"deliveries":[' .. table.concat(items, ',')
    .. '],"truncated":' .. tostring(truncated) .. '}')
