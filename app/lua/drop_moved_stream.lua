-- Delete a stream whose entries were all moved elsewhere, with its consumer groups, unless an
-- entry arrived meanwhile (the next run moves it).
--
-- KEYS[1] the stream.
-- Returns 1 when it is gone, 0 when entries are left.

if redis.call('XLEN', KEYS[1]) > 0 then return 0 end
redis.call('DEL', KEYS[1])
return 1
