/**
 * The fleet view: every router worker writes its heartbeat record to `router:<id>` (with a
 * TTL of HEARTBEAT_TTL_FACTOR intervals) and scores its id with the time in the `routers`
 * zset; the control plane lists the live ones with their lag behind the current version.
 * A router that stops beating disappears once its record expires; the control plane prunes
 * the zset of ids whose record is gone.
 */

export interface RouterHeartbeat {
  v: 1;
  id: string;
  /** The front server's hostname. */
  host: string;
  pid: number;
  /** Cluster worker id, 0 for a single-process router. */
  worker: number;
  /** The code it runs: package version + commit (build-info). */
  code_version: string;
  /** Last invalidation version applied (0: not in sync yet). */
  config_version: number;
  /** Seconds since the last invalidation message or ping reached it. */
  seconds_since_message: number;
  /** Subscribed to invalidations right now. */
  subscribed: boolean;
  /** Proxied requests in flight (HTTP and HTTPS) and open WebSockets. */
  inflight: number;
  websockets: number;
  started_at: number;
  /** Milliseconds since the epoch when this record was written. */
  at: number;
  interval_ms: number;
}

/** A record lives this many heartbeat intervals: two missed beats are forgiven. */
export const HEARTBEAT_TTL_FACTOR = 3;

/** `host:pid`; a second router in the same process (tests) gets `host:pid.2`, and so on. */
export function routerId(host: string, pid: number, instance = 1): string {
  return instance === 1 ? `${host}:${pid}` : `${host}:${pid}.${instance}`;
}

export function encodeHeartbeat(beat: RouterHeartbeat): string {
  return JSON.stringify(beat);
}

/** null for anything that is not a heartbeat of this schema (a record from a newer router, a stray key). */
export function decodeHeartbeat(raw: string): RouterHeartbeat | null {
  try {
    const value = JSON.parse(raw) as Partial<RouterHeartbeat> | null;
    if (value === null || typeof value !== 'object' || value.v !== 1 || typeof value.id !== 'string' || typeof value.config_version !== 'number' || typeof value.at !== 'number') return null;
    return value as RouterHeartbeat;
  } catch {
    return null;
  }
}
