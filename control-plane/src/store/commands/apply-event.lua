--[[
  Applies one platform event atomically: the checks, the global version bump, every record
  write and delete, the idempotency record and the invalidation publish. Either all of it
  happens or none of it: a router never reads half an event, and nothing is published that
  was not written.

  Records arrive "open" (JSON without the closing brace); this script seals each one with
  `,"version":<new version>}` so records and message carry the version allocated here.

  Input:
    KEYS[1]  app key                    KEYS[3]  apps index (zset)
    KEYS[2]  global version key         KEYS[4]  idempotency key of the event id
    KEYS[5 ..]  host keys to write (nHostWrites), then host keys to delete (nHostDeletes),
                then cert keys to write (nCertWrites), then cert keys to delete (nCertDeletes)

    ARGV[1]  version of the app record the plan was computed from ("0": the key must not exist)
    ARGV[2]  the event's seq
    ARGV[3]  owner prefix of this app's records: {"v":1,"app":"<app>",
    ARGV[4]  app name (index member)
    ARGV[5]  index action: "add" or "rem"
    ARGV[6]  app record, open
    ARGV[7]  host record, open ("" when there is no host write)
    ARGV[8]  idempotency record, open
    ARGV[9]  idempotency record TTL, seconds
    ARGV[10] invalidation channel
    ARGV[11] invalidation message, open
    ARGV[12..15] nHostWrites, nHostDeletes, nCertWrites, nCertDeletes
    ARGV[16 ..]  cert records, open, one per cert write, in KEYS order

  Output:
    {"OK", version}
    {"DUPLICATE", idempotency record}   the event id was already applied: nothing written
    {"CONFLICT"}                        the app record changed since it was read: re-read, re-plan
    {"STALE", seq}                      the app already applied this seq or a later one
    {"DOMAIN_TAKEN", host key}          a hostname to write belongs to another app
]]
local appKey, versionKey, indexKey, eventKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

local previous = redis.call('GET', eventKey)
if previous then
  return {'DUPLICATE', previous}
end

local expected = ARGV[1]
local current = redis.call('GET', appKey)
if current then
  -- Field order is part of the record contract: `seq` follows `app`, `version` is last.
  local currentVersion = string.match(current, ',"version":(%d+)}$')
  if currentVersion ~= expected then
    return {'CONFLICT'}
  end
  local currentSeq = string.match(current, '^{"v":1,"app":"[^"]*","seq":(%d+),')
  if currentSeq and tonumber(currentSeq) >= tonumber(ARGV[2]) then
    return {'STALE', currentSeq}
  end
elseif expected ~= '0' then
  return {'CONFLICT'}
end

local nHostWrites, nHostDeletes = tonumber(ARGV[12]), tonumber(ARGV[13])
local nCertWrites, nCertDeletes = tonumber(ARGV[14]), tonumber(ARGV[15])
local owner = ARGV[3]
local first, last = 5, 4 + nHostWrites

for i = first, last do
  local existing = redis.call('GET', KEYS[i])
  if existing and string.sub(existing, 1, #owner) ~= owner then
    return {'DOMAIN_TAKEN', KEYS[i]}
  end
end

local version = redis.call('INCR', versionKey)
local seal = ',"version":' .. version .. '}'

redis.call('SET', appKey, ARGV[6] .. seal)

if nHostWrites > 0 then
  local host = ARGV[7] .. seal
  for i = first, last do
    redis.call('SET', KEYS[i], host)
  end
end

local k = last + 1
for _ = 1, nHostDeletes do
  redis.call('DEL', KEYS[k])
  k = k + 1
end
for j = 1, nCertWrites do
  redis.call('SET', KEYS[k], ARGV[15 + j] .. seal)
  k = k + 1
end
for _ = 1, nCertDeletes do
  redis.call('DEL', KEYS[k])
  k = k + 1
end

if ARGV[5] == 'add' then
  redis.call('ZADD', indexKey, 0, ARGV[4])
else
  redis.call('ZREM', indexKey, ARGV[4])
end

redis.call('SET', eventKey, ARGV[8] .. seal, 'EX', tonumber(ARGV[9]))
redis.call('PUBLISH', ARGV[10], ARGV[11] .. seal)
return {'OK', version}
