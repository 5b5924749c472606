/**
 * The router as operators run it: `node dist/data-plane/src/main.js` in a child process (the
 * cluster primary and its workers), on free loopback ports, its JSON log lines collected.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { sourcePath } from '../proto/source-path.js';
import { redisUrl } from './redis.js';
import { eventually } from './router.js';

export type LogLine = Record<string, unknown>;

export interface RouterProcess {
  child: ChildProcess;
  httpPort: number;
  httpsPort: number;
  adminPort: number;
  lines: LogLine[];
  /** The first line matching, among those logged from index `from` on. */
  waitForLine(match: (l: LogLine) => boolean, timeoutMs?: number, from?: number): Promise<LogLine>;
  admin(path: string): Promise<{ status: number; body: string }>;
  kill(): void;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Starts the router on `prefix` of the test Redis and resolves once it logged "router listening". */
export async function spawnRouter(prefix: string, env: Record<string, string> = {}): Promise<RouterProcess> {
  const [httpPort, httpsPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const child = spawn(process.execPath, [sourcePath(import.meta.url, '..', 'dist', 'data-plane', 'src', 'main.js')], {
    env: {
      ...process.env,
      REDIS_URL: redisUrl(),
      REDIS_PREFIX: prefix,
      ROUTER_HOST: '127.0.0.1',
      ROUTER_HTTP_PORT: String(httpPort),
      ROUTER_HTTPS_PORT: String(httpsPort),
      ROUTER_ADMIN_PORT: String(adminPort),
      ROUTER_WORKERS: '2',
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: LogLine[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as LogLine);
    } catch {
      // not JSON: ignore
    }
  });
  const waitForLine = (match: (l: LogLine) => boolean, timeoutMs = 15_000, from = 0): Promise<LogLine> =>
    eventually(async () => lines.slice(from).some(match), timeoutMs, 20).then(() => lines.slice(from).find(match)!);
  const proc: RouterProcess = {
    child,
    httpPort,
    httpsPort,
    adminPort,
    lines,
    waitForLine,
    async admin(path) {
      const res = await fetch(`http://127.0.0.1:${adminPort}${path}`);
      return { status: res.status, body: await res.text() };
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
  try {
    await waitForLine((l) => l['msg'] === 'router listening');
  } catch (err) {
    proc.kill();
    throw err;
  }
  return proc;
}
