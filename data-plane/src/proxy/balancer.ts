/**
 * Which container gets a request: power of two choices on in-flight requests (or round
 * robin), skipping containers ejected after a refused or timed-out connection, with an
 * optional sticky cookie. State is per app in a bounded LRU and rebuilt only when the
 * app's container set changes; a rebuild keeps the slot of every container still present,
 * so in-flight counts and ejections survive a scale event.
 */
import { LRUCache } from 'lru-cache';
import type { Container } from '../../../proto/records.js';

export const STICKY_COOKIE = 'rt_sticky';

/** One container of one app, as the balancer tracks it. */
export class ContainerSlot {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  /** `http://host:port`: the upstream pool's key. */
  readonly origin: string;
  readonly cookieValue: string;
  readonly setCookie: string;
  inflight = 0;
  /** performance.now() until which the container is skipped. */
  ejectedUntil = 0;

  constructor(c: Container) {
    this.id = c.id;
    this.host = c.host;
    this.port = c.port;
    this.origin = c.host.includes(':') ? `http://[${c.host}]:${c.port}` : `http://${c.host}:${c.port}`;
    this.cookieValue = encodeURIComponent(c.id);
    this.setCookie = `${STICKY_COOKIE}=${this.cookieValue}; Path=/; HttpOnly; SameSite=Lax`;
  }
}

function slotKey(c: Container): string {
  return `${c.id}@${c.host}:${c.port}`;
}

function setKey(containers: Container[]): string {
  let key = '';
  for (const c of containers) key += `${slotKey(c)}|`;
  return key;
}

export class AppBalance {
  /** Round-robin cursor. */
  next = 0;
  private byCookie: Map<string, ContainerSlot> | null = null;

  constructor(
    /** The record's array this state was built or confirmed for: a reference check is the fast path. */
    public containers: Container[],
    readonly key: string,
    readonly slots: ContainerSlot[],
  ) {}

  slotForCookie(value: string): ContainerSlot | undefined {
    if (this.byCookie === null) {
      this.byCookie = new Map();
      for (const slot of this.slots) this.byCookie.set(slot.cookieValue, slot);
    }
    return this.byCookie.get(value);
  }
}

function excluded(slot: ContainerSlot, exclude: ContainerSlot[] | null): boolean {
  return exclude !== null && exclude.includes(slot);
}

export class Balancer {
  private readonly apps: LRUCache<string, AppBalance>;

  constructor(
    maxApps: number,
    private readonly ejectMs: number,
  ) {
    this.apps = new LRUCache({ max: maxApps });
  }

  /** The balancer state of `app` for this container list (the HostRecord's array). */
  stateFor(app: string, containers: Container[]): AppBalance {
    const current = this.apps.get(app);
    if (current !== undefined && current.containers === containers) return current;
    const key = setKey(containers);
    if (current !== undefined && current.key === key) {
      current.containers = containers;
      return current;
    }
    const previous = new Map<string, ContainerSlot>();
    if (current !== undefined) for (const slot of current.slots) previous.set(`${slot.id}@${slot.host}:${slot.port}`, slot);
    const slots = containers.map((c) => previous.get(slotKey(c)) ?? new ContainerSlot(c));
    const state = new AppBalance(containers, key, slots);
    this.apps.set(app, state);
    return state;
  }

  /**
   * A container for one attempt, or null when every container is in `exclude` (already
   * tried by this request). Ejected containers are skipped unless all the others are.
   */
  pick(state: AppBalance, roundRobin: boolean, sticky: string | undefined, exclude: ContainerSlot[] | null, now: number): ContainerSlot | null {
    const slots = state.slots;
    const n = slots.length;
    if (sticky !== undefined) {
      const slot = state.slotForCookie(sticky);
      if (slot !== undefined && slot.ejectedUntil <= now && !excluded(slot, exclude)) return slot;
    }
    if (n <= 1) {
      const only = slots[0];
      return only === undefined || excluded(only, exclude) ? null : only;
    }
    if (roundRobin) return this.roundRobin(state, exclude, now);
    const i = (Math.random() * n) | 0;
    let j = (Math.random() * (n - 1)) | 0;
    if (j >= i) j++;
    const a = slots[i]!;
    const b = slots[j]!;
    const aOk = a.ejectedUntil <= now && !excluded(a, exclude);
    const bOk = b.ejectedUntil <= now && !excluded(b, exclude);
    if (aOk && bOk) return b.inflight < a.inflight ? b : a;
    // One draw is ejected or already tried: compare the other with the next usable container
    // instead, so an ejection does not turn p2c into a blind pick.
    if (aOk) return lighter(a, nextUsable(slots, j, a, exclude, now));
    if (bOk) return lighter(b, nextUsable(slots, i, b, exclude, now));
    return leastLoaded(slots, exclude, now);
  }

  /** Skips `slot` for ejectMs; false when it already was. */
  eject(slot: ContainerSlot, now: number): boolean {
    const fresh = slot.ejectedUntil <= now;
    slot.ejectedUntil = now + this.ejectMs;
    return fresh;
  }

  private roundRobin(state: AppBalance, exclude: ContainerSlot[] | null, now: number): ContainerSlot | null {
    const slots = state.slots;
    const n = slots.length;
    for (let k = 0; k < n; k++) {
      const idx = (state.next + k) % n;
      const slot = slots[idx]!;
      if (slot.ejectedUntil <= now && !excluded(slot, exclude)) {
        state.next = (idx + 1) % n;
        return slot;
      }
    }
    return leastLoaded(slots, exclude, now);
  }
}

function lighter(a: ContainerSlot, b: ContainerSlot | null): ContainerSlot {
  return b !== null && b.inflight < a.inflight ? b : a;
}

/** The first usable container after index `from` (wrapping), other than `other`. */
function nextUsable(slots: ContainerSlot[], from: number, other: ContainerSlot, exclude: ContainerSlot[] | null, now: number): ContainerSlot | null {
  const n = slots.length;
  for (let k = 1; k < n; k++) {
    const slot = slots[(from + k) % n]!;
    if (slot !== other && slot.ejectedUntil <= now && !excluded(slot, exclude)) return slot;
  }
  return null;
}

/**
 * Slow path, when random draws found nothing usable: the least loaded container not ejected,
 * else (all ejected: an ejection may be stale) the least loaded one not yet tried.
 */
function leastLoaded(slots: ContainerSlot[], exclude: ContainerSlot[] | null, now: number): ContainerSlot | null {
  let best: ContainerSlot | null = null;
  for (const slot of slots) {
    if (slot.ejectedUntil <= now && !excluded(slot, exclude) && (best === null || slot.inflight < best.inflight)) best = slot;
  }
  if (best !== null) return best;
  for (const slot of slots) {
    if (!excluded(slot, exclude) && (best === null || slot.ejectedUntil < best.ejectedUntil)) best = slot;
  }
  return best;
}

const STICKY_NEEDLE = `${STICKY_COOKIE}=`;

/** The `rt_sticky` value of a Cookie header, if any. */
export function stickyFromCookie(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const needle = STICKY_NEEDLE;
  for (let i = header.indexOf(needle); i >= 0; i = header.indexOf(needle, i + 1)) {
    const before = i === 0 ? 59 : header.charCodeAt(i - 1);
    if (before !== 59 /* ; */ && before !== 32 /* space */) continue;
    const start = i + needle.length;
    const end = header.indexOf(';', start);
    return header.slice(start, end < 0 ? header.length : end).trim();
  }
  return undefined;
}
