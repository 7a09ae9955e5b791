-- A finished run as the Automations API's run endpoint answers it.
-- C names: AM_EXECUTION_RESULT_* in src/am_scripts.h.
--
-- KEYS[1]  execution hash
--
-- Returns { status, body }: 200 on success, 422 when the run failed or
-- timed out, 202 with the execution's status as body while unfinished,
-- 404 when the record is gone.

local e = hash(redis.call('HGETALL', KEYS[1]))

if e.execution_id == nil then
    return detail(404, 'Execution not found')
end

if not finished(e.status) then
    return reply(202, e.status)
end

return execution_result(e)
