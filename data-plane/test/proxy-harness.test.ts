/**
 * Shared fixtures for the proxy tests (no tests of its own): a RouteLookup stub, real
 * node:http upstreams on 127.0.0.1, a router server with a small-timeout config, and
 * clients that keep the raw bytes in view.
 */
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type { TlsOptions } from 'node:tls';
import { pino } from 'pino';
import type { AcmeResponder } from '../src/acme/acme-responder.js';
import { loadRouterConfig, type RouterConfig } from '../src/config.js';
import { createRouterServer, type RouterServer } from '../src/http-server.js';
import { RouterMetrics } from '../src/metrics.js';
import type { AccessLogLine } from '../src/proxy/access-log.js';
import { StoreUnavailableError, type RouteLookup } from '../src/routing/route-lookup.js';
import { startUpstream, type Upstream } from '../../test-support/router.js';
import { DEFAULT_SETTINGS, type AppSettings, type Container, type HostRecord } from '../../proto/records.js';

export class StubRoutes implements RouteLookup {
  readonly records = new Map<string, HostRecord>();
  async = false;
  down = false;
  lookups = 0;

  set(host: string, record: HostRecord | null): void {
    if (record === null) this.records.delete(host);
    else this.records.set(host, record);
  }

  resolve(hostname: string): HostRecord | null | Promise<HostRecord | null> {
    this.lookups++;
    if (this.down) {
      if (this.async) return Promise.reject(new StoreUnavailableError('redis down'));
      throw new StoreUnavailableError('redis down');
    }
    const found = this.records.get(hostname) ?? null;
    return this.async ? new Promise((resolve) => setTimeout(() => resolve(found), 1)) : found;
  }
}

let version = 0;
export function hostRecord(app: string, containers: Container[], settings: Partial<AppSettings> = {}, status: HostRecord['status'] = 'running'): HostRecord {
  return { v: 1, app, status, containers, settings: { ...DEFAULT_SETTINGS, ...settings }, version: ++version };
}

export function testConfig(env: Record<string, string> = {}): RouterConfig {
  return loadRouterConfig({ ROUTER_WORKERS: '1', ...env });
}

export interface Harness {
  router: RouterServer;
  port: number;
  routes: StubRoutes;
  metrics: RouterMetrics;
  lines: AccessLogLine[];
  config: RouterConfig;
  close(): Promise<void>;
}

export async function startRouter(env: Record<string, string> = {}, extra: { routerName?: string; acme?: AcmeResponder; forwardedProto?: 'http' | 'https'; tls?: TlsOptions } = {}): Promise<Harness> {
  const config = testConfig(env);
  const routes = new StubRoutes();
  const metrics = new RouterMetrics(50);
  const lines: AccessLogLine[] = [];
  const router = createRouterServer({
    routes,
    metrics,
    config,
    accessLog: (line) => lines.push(line),
    log: pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' }),
    ...(extra.routerName === undefined ? {} : { routerName: extra.routerName }),
    ...(extra.acme === undefined ? {} : { acme: extra.acme }),
    ...(extra.forwardedProto === undefined ? {} : { forwardedProto: extra.forwardedProto }),
    ...(extra.tls === undefined ? {} : { tls: extra.tls }),
  });
  const port = await router.listen('127.0.0.1', 0);
  return { router, port, routes, metrics, lines, config, close: () => router.close() };
}

export { startUpstream, type Upstream };

/** A loopback port that refuses connections: bound, then closed. */
export async function refusedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

export function request(port: number, host: string, options: { path?: string; method?: string; headers?: http.OutgoingHttpHeaders; body?: string | Buffer } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: options.path ?? '/', method: options.method ?? 'GET', headers: { host, ...options.headers }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Writes `raw` on a fresh connection and collects everything until the router closes it (or `waitMs`). */
export function rawExchange(port: number, raw: string | Buffer, waitMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(port, '127.0.0.1', () => socket.write(raw));
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    };
    const timer = setTimeout(done, waitMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('close', done);
    socket.on('error', () => undefined);
  });
}

/** Reads the whole body, then answers `<id> <method> <url> <body bytes>`; `special` may answer first. */
export function countingHandler(id: string, special?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean): http.RequestListener {
  return (req, res) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      if (special?.(req, res) !== true) res.end(`${id} ${req.method} ${req.url} ${bytes}`);
    });
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until true or `timeoutMs`; returns whether it became true. */
export async function until(check: () => boolean, timeoutMs = 2000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return true;
    await sleep(10);
  }
  return check();
}

/** The value of a counter or gauge sample with these labels (0 when absent). */
export async function metricValue(metrics: RouterMetrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = metrics.registry.getSingleMetric(name);
  if (metric === undefined) return 0;
  const data = await metric.get();
  let sum = 0;
  for (const v of data.values) {
    if (Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want)) sum += v.value;
  }
  return sum;
}
