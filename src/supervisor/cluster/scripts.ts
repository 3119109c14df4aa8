/**
 * Lua scripts run atomically by Redis. Each is the compare-and-set step of a pure
 * transition computed in JavaScript (DESIGN.md: one state machine, applied with a
 * compare-and-set on a version), never a second implementation of SPC-4.
 */

/**
 * Compare-and-set of one LU's PR state, publishing the change in the same step.
 * KEYS: pr key, events stream, epoch, then the lease keys of the other nodes. ARGV:
 * epoch, expected version, new state JSON, event JSON, stream length bound.
 * Returns {'OK', stream id, lease JSON or '' per peer lease key} |
 * {'CONFLICT', current JSON or ''} | {'EPOCH', epoch or ''}.
 *
 * The peers' leases are read in the same atomic step as the change: every node whose
 * lease exists at that instant may have loaded the state before it, so each one must
 * acknowledge (a node that joined after the writer's last look at the leases too);
 * a node whose lease does not exist yet will load the new state (pr-store.ts).
 */
export const CAS_PR = `
local ep = redis.call('GET', KEYS[3])
if ep ~= ARGV[1] then return {'EPOCH', ep or ''} end
local cur = redis.call('GET', KEYS[1])
local v = 0
if cur then v = cjson.decode(cur)['version'] end
if tostring(v) ~= ARGV[2] then return {'CONFLICT', cur or ''} end
redis.call('SET', KEYS[1], ARGV[3])
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'e', ARGV[4])
local out = {'OK', id}
for i = 4, #KEYS do out[#out + 1] = redis.call('GET', KEYS[i]) or '' end
return out
`;

/**
 * Renew a node's lease. KEYS: lease key, revoked key. ARGV: lease JSON, ttl ms,
 * incarnation. Refuses when a peer revoked the lease, or when the key is held by another
 * process with the same node id (a second node started with the same --node).
 * Returns 'OK' | 'REVOKED' | 'TAKEN'.
 */
export const RENEW_LEASE = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 'REVOKED' end
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, v = pcall(cjson.decode, cur)
  if ok and v['inc'] ~= ARGV[3] then return 'TAKEN' end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 'OK'
`;

/**
 * Publish an event if the epoch is still the one this node knows.
 * KEYS: events stream, epoch. ARGV: epoch, event JSON, stream length bound.
 * Returns the stream id, or false on an epoch mismatch.
 */
export const PUBLISH = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[2])
`;

/**
 * Publish an event that every live peer must acknowledge (cluster-wide task management),
 * reading the peers' leases in the same atomic step (see CAS_PR for why).
 * KEYS: events stream, epoch, then the lease keys of the other nodes. ARGV: epoch, event
 * JSON, stream length bound. Returns {stream id, lease JSON or '' per lease key}, or
 * false on an epoch mismatch.
 */
export const PUBLISH_FENCED = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
local out = {redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[2])}
for i = 3, #KEYS do out[#out + 1] = redis.call('GET', KEYS[i]) or '' end
return out
`;

/** Release a lock only if this holder still owns it. KEYS: lock. ARGV: token. */
export const UNLOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;
