/**
 * A whole platform for end-to-end tests: the real control plane and the real router on one
 * key prefix of the test Redis, and real upstream containers on free loopback ports.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { loadRouterConfig, type RouterConfig } from '../data-plane/src/config.js';
import type { AccessLogLine } from '../data-plane/src/proxy/access-log.js';
import { startRouter, type Router, type RouterOptions } from '../data-plane/src/router.js';
import { startHarness, TEST_KEY_ENCRYPTION_KEY, type Harness } from './control-plane.js';
import { redisUrl } from './redis.js';

export interface Upstream {
  id: string;
  port: number;
  container: { id: string; host: string; port: number };
  hits: number;
  /** The last request it received (headers, socket), for assertions. */
  last: http.IncomingMessage | null;
  server: http.Server;
  close(): Promise<void>;
}

/** A container that answers `<id> <method> <url>` and counts what it served. */
export async function startUpstream(id: string, handler?: http.RequestListener): Promise<Upstream> {
  const upstream = { id, hits: 0, last: null } as unknown as Upstream;
  const server = http.createServer((req, res) => {
    upstream.hits++;
    upstream.last = req;
    if (handler) return handler(req, res);
    res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': id });
    res.end(`${id} ${req.method} ${req.url}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  Object.assign(upstream, {
    port,
    server,
    container: { id, host: '127.0.0.1', port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  });
  return upstream;
}

export interface Stack {
  h: Harness;
  router: Router;
  config: RouterConfig;
  base: string;
  accessLines: AccessLogLine[];
  /** GET through the router with the given Host. */
  get(host: string, path?: string, headers?: Record<string, string>): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }>;
  close(): Promise<void>;
}

export function routerRequest(port: number, host: string, path = '/', headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers: { host, ...headers }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export interface StackOptions extends RouterOptions {
  /** The router's logger (tests capture its lines); default: silent unless TEST_LOG_LEVEL. */
  log?: Logger;
}

export async function startStack(label: string, env: Record<string, string> = {}, options: StackOptions = {}): Promise<Stack> {
  const h = await startHarness(label, env['REDIS_URL'] ? { REDIS_URL: env['REDIS_URL'] } : {});
  const config = loadRouterConfig({
    REDIS_URL: redisUrl(),
    REDIS_PREFIX: h.prefix,
    ROUTER_HOST: '127.0.0.1',
    ROUTER_HTTP_PORT: '0',
    ROUTER_WORKERS: '1',
    // The harness's control plane seals private keys with it; the router must open them.
    KEY_ENCRYPTION_KEY: TEST_KEY_ENCRYPTION_KEY,
    LOG_LEVEL: 'silent',
    ...env,
  });
  const accessLines: AccessLogLine[] = [];
  const { log, ...routerOptions } = options;
  const router = await startRouter(config, log ?? pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' }), {
    accessLog: (line) => accessLines.push(line),
    port: 0,
    httpsPort: 0,
    ...routerOptions,
  });
  const base = `http://127.0.0.1:${router.port}`;
  return {
    h,
    router,
    config,
    base,
    accessLines,
    get: (host, path = '/', headers = {}) => routerRequest(router.port, host, path, headers),
    async close() {
      await router.close();
      await h.close();
    },
  };
}

/** Polls `check` until it returns true (bounded), returning how long it took in ms. */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 2000, everyMs = 2): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (await check()) return performance.now() - started;
    if (performance.now() - started > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
