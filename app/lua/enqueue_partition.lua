-- The partition's half of storing a submission on a cluster (after admit.lua): its status
-- record and its entry on the partition's stream, and the drain lease asked for, all or nothing,
-- on the partition's slot.
--
-- KEYS and ARGV[2..] as store_submission in ingest_lib.lua reads them (from KEYS[1], ARGV[2]);
-- ARGV[1] n, the generations a lookup reads. Returns store_submission's reply.

return store_submission(1, tonumber(ARGV[1]), 2)
