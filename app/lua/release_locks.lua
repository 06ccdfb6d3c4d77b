-- Release the family locks in KEYS that ARGV[1] (the owner) still holds; leave others' alone.

for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 1
