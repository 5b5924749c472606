--[[
  Compare-and-set of one string key: writes ARGV[2] only if the key still holds ARGV[1], so a
  background rewrite (key re-encryption) never overwrites what an event wrote meanwhile.
  Returns 1 when written, 0 when the key changed (re-read and decide again).
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0
