-- A page of a project's executions, or of one automation's, newest first:
-- the status records without output or log, read through the indexes that
-- execution_enqueue and execution_retry keep (lib.lua execution_index).
-- A page reads at most 1000 index members: with a filter that matches few
-- executions, it may hold fewer than the limit and still have a
-- next_cursor, where the next page goes on.
-- C names: AM_EXECUTION_LIST_* in src/am_scripts.h.
--
-- KEYS[1]  project hash
-- ARGV[1]  key base "<prefix>{P}:"
-- ARGV[2]  automation name, or "" for the whole project
-- ARGV[3]  status, or "" for any
-- ARGV[4]  created since, ms since the epoch, or ""
-- ARGV[5]  created until, ms, or ""
-- ARGV[6]  most executions on the page
-- ARGV[7]  cursor "<ms>-<execution id>" of the last one read, or ""
--
-- Returns { status, body }: 200 {"executions": [...], "next_cursor"},
-- 404 when the project or the automation does not exist.

local base, name = ARGV[1], ARGV[2]

if redis.call('EXISTS', KEYS[1]) == 0 then
    return detail(404, 'Project not found')
end

local index = base .. 'executions'
if name ~= '' then
    if redis.call('EXISTS', base .. 'automation:' .. name) == 0 then
        return detail(404, "Automation '" .. name .. "' not found")
    end
    index = index .. ':' .. name
end

local limit, most = tonumber(ARGV[6]), 1000
local max = ARGV[5] ~= '' and tonumber(ARGV[5]) or math.huge
local min = ARGV[4] ~= '' and ARGV[4] or '-inf'
local after_ms, after_id = nil, nil

if ARGV[7] ~= '' then
    local ms, id = string.match(ARGV[7], '^(%d+)%-(exec_%x+)$')
    if ms == nil then
        return detail(400, 'Invalid cursor')
    end
    after_ms, after_id = tonumber(ms), id
    if after_ms < max then
        max = after_ms
    end
end

local items, stale, read, offset = {}, {}, 0, 0
local last, next_cursor = nil, nil

while read < most and next_cursor == nil do
    local batch = redis.call('ZREVRANGEBYSCORE', index,
        max == math.huge and '+inf' or max, min,
        'WITHSCORES', 'LIMIT', offset, 100)
    if #batch == 0 then
        break
    end
    offset = offset + #batch / 2

    for i = 1, #batch, 2 do
        local id, ms = batch[i], tonumber(batch[i + 1])

        -- members of the cursor's millisecond come in descending order
        if not (after_ms and ms == after_ms and id >= after_id) then
            if #items == limit then
                next_cursor = last
                break
            end

            read = read + 1
            last = string.format('%d-%s', ms, id)

            local e = hash(redis.call('HGETALL', base .. 'execution:' .. id))
            if e.execution_id == nil then
                stale[#stale + 1] = id
            elseif ARGV[3] == '' or e.status == ARGV[3] then
                items[#items + 1] = execution_document(e, false)
            end

            if read == most then
                next_cursor = last
                break
            end
        end
    end
end

-- records that expired before their index member was trimmed
if #stale > 0 then
    redis.call('ZREM', index, unpack(stale))
end

return reply(200, '{"executions":[' .. table.concat(items, ',')
    .. '],"next_cursor":' .. jstr(next_cursor) .. '}')
