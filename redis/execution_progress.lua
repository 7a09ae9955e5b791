-- Records how far a running execution is, as its run last said (the file
-- .progress of the run's folder, read by the worker): only while it runs,
-- so that a record finished, cancelled or expired meanwhile is left alone.
-- C names: AM_EXECUTION_PROGRESS_* in src/am_scripts.h.
--
-- KEYS[1]  execution hash
-- ARGV[1]  fraction, a number from 0 to 1
-- ARGV[2]  message
--
-- Returns 1 when recorded, 0 when the execution is not running.

if redis.call('HGET', KEYS[1], 'status') ~= 'running' then
    return 0
end

redis.call('HSET', KEYS[1], 'progress_fraction', ARGV[1],
    'progress_message', ARGV[2])

return 1
