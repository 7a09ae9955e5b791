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

return reply(200, execution_document(e, true))
