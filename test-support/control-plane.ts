/**
 * A real control plane for tests: its own key prefix on the test Redis, REST and gRPC on
 * free ports, a plain Redis client to inspect what it wrote, and an invalidation subscriber.
 */
import { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import { KeySchema } from '../proto/keys.js';
import { decodeInvalidation, type Invalidation } from '../proto/invalidation.js';
import { loadControlPlaneConfig } from '../control-plane/src/config.js';
import { startControlPlane, type ControlPlane } from '../control-plane/src/control-plane.js';
import { signBody } from '../proto/hook-signature.js';
import { deleteByPrefix, redisUrl, uniquePrefix } from './redis.js';

export const TEST_TOKEN = 'test-token-0123456789';
export const TEST_HOOK_SECRET = 'test-hook-secret-0123456789';
/** Fixed so records written by one harness can be checked with a ring built in the test; pass `KEY_ENCRYPTION_KEY: ''` for none. */
export const TEST_KEY_ENCRYPTION_KEY = Buffer.alloc(32, 'test-key-encryption-key-32bytes!').toString('base64');

export interface Reply {
  status: number;
  // Tests read arbitrary JSON answers; asserting on them is the point.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  headers: Headers;
}

export type AuthMode = 'token' | 'hmac' | 'none';

export interface RequestOptions {
  auth?: AuthMode;
  headers?: Record<string, string>;
  /** Sent as is instead of JSON.stringify(body). */
  raw?: string | Buffer;
}

export interface Subscription {
  messages: Invalidation[];
  /** Resolves once `count` messages have arrived (or rejects after `timeoutMs`). */
  waitFor(count: number, timeoutMs?: number): Promise<Invalidation[]>;
  close(): Promise<void>;
}

export class Harness {
  readonly keys: KeySchema;
  readonly base: string;
  private seqCounter = 0;
  private idCounter = 0;

  constructor(
    readonly prefix: string,
    readonly redis: Redis,
    readonly cp: ControlPlane,
  ) {
    this.keys = new KeySchema(prefix);
    this.base = `http://127.0.0.1:${cp.restPort}`;
  }

  nextSeq(): number {
    return ++this.seqCounter;
  }

  nextId(): string {
    return `evt-${this.prefix}${++this.idCounter}`;
  }

  async request(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<Reply> {
    const payload = opts.raw ?? (body === undefined ? undefined : JSON.stringify(body));
    const headers: Record<string, string> = { ...(payload !== undefined ? { 'content-type': 'application/json' } : {}), ...opts.headers };
    const auth = opts.auth ?? 'token';
    if (auth === 'token') headers['authorization'] = `Bearer ${TEST_TOKEN}`;
    if (auth === 'hmac') headers['x-platform-signature'] = signBody(TEST_HOOK_SECRET, payload ?? '');
    const res = await fetch(`${this.base}${path}`, { method, headers, body: payload });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // metrics and other text answers stay strings
    }
    return { status: res.status, body: parsed, headers: res.headers };
  }

  post(path: string, body: unknown, opts?: RequestOptions): Promise<Reply> {
    return this.request('POST', path, body, opts);
  }

  get(path: string, opts?: RequestOptions): Promise<Reply> {
    return this.request('GET', path, undefined, opts);
  }

  /** POST /v1/events with a fresh id and the next seq unless given. */
  send(event: Record<string, unknown>, opts?: RequestOptions): Promise<Reply> {
    return this.post('/v1/events', { id: this.nextId(), seq: this.nextSeq(), ...event }, opts);
  }

  deploy(app: string, containers: Array<{ id: string; host: string; port: number }>, extra: Record<string, unknown> = {}): Promise<Reply> {
    return this.send({ app, type: 'deploy', containers, ...extra });
  }

  async subscribe(): Promise<Subscription> {
    const sub = this.redis.duplicate();
    const messages: Invalidation[] = [];
    const waiters: Array<() => void> = [];
    sub.on('message', (_channel: string, raw: string) => {
      messages.push(decodeInvalidation(raw));
      for (const w of waiters.splice(0)) w();
    });
    await sub.subscribe(this.keys.invalidationChannel);
    return {
      messages,
      waitFor(count, timeoutMs = 5000) {
        return new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`got ${messages.length} of ${count} invalidations`)), timeoutMs);
          const check = (): void => {
            if (messages.length >= count) {
              clearTimeout(timer);
              resolve(messages);
            } else waiters.push(check);
          };
          check();
        });
      },
      async close() {
        sub.disconnect();
      },
    };
  }

  /** Every key this harness's control plane wrote, for "nothing was written" assertions. */
  async keyCount(): Promise<number> {
    let cursor = '0';
    let n = 0;
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.prefix}*`, 'COUNT', 1000);
      cursor = next;
      n += keys.length;
    } while (cursor !== '0');
    return n;
  }

  async close(): Promise<void> {
    await this.cp.close();
    await deleteByPrefix(this.redis, this.prefix);
    this.redis.disconnect();
  }
}

export interface HarnessOptions {
  /** The control plane's logger (tests capture its lines); default: silent unless TEST_LOG_LEVEL. */
  log?: Logger;
}

export async function startHarness(label: string, env: Record<string, string> = {}, options: HarnessOptions = {}): Promise<Harness> {
  const prefix = uniquePrefix(label);
  const config = loadControlPlaneConfig({
    REDIS_URL: redisUrl(),
    REDIS_PREFIX: prefix,
    CONTROL_PLANE_HOST: '127.0.0.1',
    CONTROL_PLANE_PORT: '0',
    CONTROL_PLANE_GRPC_PORT: '0',
    CONTROL_PLANE_TOKENS: TEST_TOKEN,
    HOOK_SECRET: TEST_HOOK_SECRET,
    KEY_ENCRYPTION_KEY: TEST_KEY_ENCRYPTION_KEY,
    LOG_LEVEL: 'silent',
    ...env,
  });
  const cp = await startControlPlane(config, options.log ?? pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' }));
  const redis = new Redis(redisUrl());
  return new Harness(prefix, redis, cp);
}
