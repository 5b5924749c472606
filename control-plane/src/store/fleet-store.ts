/**
 * The fleet view, read side: the routers whose heartbeat record is still alive, with their
 * lag behind the current config version. Ids whose record expired (a router that stopped
 * beating) are pruned from the index on the way.
 */
import type { Redis } from 'ioredis';
import { decodeHeartbeat, type RouterHeartbeat } from '../../../proto/fleet.js';
import type { KeySchema } from '../../../proto/keys.js';

export interface RouterView {
  id: string;
  host: string;
  pid: number;
  worker: number;
  code_version: string;
  config_version: number;
  /** Current config version minus the router's: 0 when it serves the latest writes. */
  lag: number;
  subscribed: boolean;
  seconds_since_message: number;
  inflight: number;
  websockets: number;
  started_at: string;
  last_seen_ms_ago: number;
}

export interface FleetView {
  version: number;
  routers: RouterView[];
}

/** Index entries are read in pages, so a large fleet is never one huge reply. */
const PAGE = 500;

export class FleetStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: KeySchema,
  ) {}

  async list(now = Date.now()): Promise<FleetView> {
    const ids = await this.redis.zrange(this.keys.routersIndexKey, '0', '-1');
    const version = Number((await this.redis.get(this.keys.versionKey)) ?? 0);
    const beats: RouterHeartbeat[] = [];
    const gone: string[] = [];
    for (let i = 0; i < ids.length; i += PAGE) {
      const page = ids.slice(i, i + PAGE);
      const raws = await this.redis.mget(page.map((id) => this.keys.router(id)));
      raws.forEach((raw, j) => {
        const beat = raw === null ? null : decodeHeartbeat(raw);
        if (beat === null) gone.push(page[j]!);
        else beats.push(beat);
      });
    }
    if (gone.length > 0) await this.redis.zrem(this.keys.routersIndexKey, ...gone);
    beats.sort((a, b) => a.host.localeCompare(b.host) || a.worker - b.worker || a.pid - b.pid);
    return {
      version,
      routers: beats.map((b) => ({
        id: b.id,
        host: b.host,
        pid: b.pid,
        worker: b.worker,
        code_version: b.code_version,
        config_version: b.config_version,
        lag: Math.max(0, version - b.config_version),
        subscribed: b.subscribed,
        seconds_since_message: b.seconds_since_message,
        inflight: b.inflight,
        websockets: b.websockets,
        started_at: new Date(b.started_at).toISOString(),
        last_seen_ms_ago: Math.max(0, now - b.at),
      })),
    };
  }
}
