/**
 * Every process the router benchmark starts, in one registry, so that a normal end, an error
 * or Ctrl-C stops all of them: a stray nginx or router left on a loopback port would skew the
 * next run, and a stray redis-server would keep its memory.
 *
 * Services log to files, never to a pipe this process drains: on two shared cores a full
 * pipe stalls their synchronous log writes and the benchmark would measure the pipe.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { cp, readdir, readFile, symlink } from 'node:fs/promises';
import path from 'node:path';
import { createConnection, createServer } from 'node:net';
import { sourcePath } from '../../proto/source-path.js';

export const HOST = '127.0.0.1';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Stoppable {
  name: string;
  stop(): Promise<void>;
  /** Synchronous last resort from a process 'exit' handler. */
  kill(): void;
}

const running: Stoppable[] = [];

export function register(entry: Stoppable): void {
  running.push(entry);
}

export function unregister(entry: Stoppable): void {
  const i = running.indexOf(entry);
  if (i >= 0) running.splice(i, 1);
}

/** Newest first: the router and the proxies go before the control plane, backends and Redis they use. */
export async function stopAll(): Promise<void> {
  while (running.length > 0) {
    const entry = running.pop()!;
    await entry.stop().catch((err: unknown) => process.stderr.write(`could not stop ${entry.name}: ${String(err)}\n`));
  }
}

// An uncaught error path still must not leave servers bound to our ports.
process.on('exit', () => {
  for (const entry of running) entry.kill();
});

export interface Child {
  name: string;
  proc: ChildProcess;
  pid: number;
  logFile: string;
  exited: Promise<void>;
  /** `signal` first, SIGKILL after `graceMs`. Safe to call more than once. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

export function spawnLogged(name: string, command: string, args: string[], env: NodeJS.ProcessEnv, logFile: string): Child {
  const fd = openSync(logFile, 'a');
  const proc = spawn(command, args, { env, stdio: ['ignore', fd, fd] });
  // The child holds its own copy of the descriptor.
  closeSync(fd);
  const exited = new Promise<void>((resolve) => {
    proc.once('exit', () => resolve());
    proc.once('error', () => resolve());
  });
  let stopping: Promise<void> | null = null;
  const alive = (): boolean => proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined;
  const child: Child = {
    name,
    proc,
    pid: proc.pid ?? -1,
    logFile,
    exited,
    stop(signal = 'SIGTERM', graceMs = 10_000) {
      stopping ??= (async () => {
        if (alive()) {
          proc.kill(signal);
          const done = await Promise.race([exited.then(() => true), sleep(graceMs).then(() => false)]);
          if (!done) {
            proc.kill('SIGKILL');
            await exited;
          }
        }
        unregister(entry);
      })();
      return stopping;
    },
  };
  const entry: Stoppable = {
    name,
    stop: () => child.stop(),
    kill: () => {
      if (alive()) proc.kill('SIGKILL');
    },
  };
  register(entry);
  return child;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, HOST, () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export async function freePorts(n: number): Promise<number[]> {
  // Held open together so that the n ports are distinct.
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, HOST, () => resolve(srv));
    })),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: HOST, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Polls until `check` is true; throws after `timeoutMs` or when `child` exits first. */
export async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number, child?: Child): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (child !== undefined && (child.proc.exitCode !== null || child.proc.signalCode !== null)) {
      throw new Error(`${child.name} exited (${child.proc.exitCode ?? child.proc.signalCode}) before ${what}; see ${child.logFile}`);
    }
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${child ? `; see ${child.logFile}` : ''}`);
}

export async function readText(file: string): Promise<string> {
  return readFile(file, 'utf8').catch(() => '');
}

export function run(command: string, args: string[], timeoutMs = 10_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

export const TOKEN = 'router-bench-token-0123456789';
export const PREFIX = 'rbench:';

/** `env`: added to the defaults below (the TLS benchmark sets KEY_ENCRYPTION_KEY). */
export async function startControlPlane(redisUrl: string, logFile: string, env: Record<string, string> = {}): Promise<{ child: Child; port: number }> {
  const entry = sourcePath(import.meta.url, '..', '..', 'dist', 'control-plane', 'src', 'main.js');
  const port = await freePort();
  const child = spawnLogged('control plane', process.execPath, [entry], {
    ...process.env,
    REDIS_URL: redisUrl,
    REDIS_PREFIX: PREFIX,
    CONTROL_PLANE_TOKENS: TOKEN,
    CONTROL_PLANE_HOST: HOST,
    CONTROL_PLANE_PORT: String(port),
    CONTROL_PLANE_GRPC_PORT: '0',
    LOG_LEVEL: 'info',
    ...env,
  }, logFile);
  await waitUntil('the control plane /healthz', () => fetch(`http://${HOST}:${port}/healthz`).then((r) => r.ok, () => false), 20_000, child);
  return { child, port };
}

export interface RouterProcess {
  child: Child;
  port: number;
  /** The HTTPS listener's port (ROUTER_HTTPS_PORT, a free one unless `env` sets it). */
  httpsPort: number;
  adminPort: number;
  logFile: string;
  /** Worker id → pid, from the primary's "router worker listening" lines (a replaced worker's new pid wins). */
  workerPids(): Promise<Map<number, number>>;
  /** Workers that died and were replaced during the run, from the primary's log. */
  workerDeaths(): Promise<number>;
}

export interface RouterCode {
  /** main.js of the copy the routers run from. */
  entry: string;
  /** sha256 of the compiled router and proto files, to tell two runs' builds apart. */
  fingerprint: string;
  commit: string;
  /** Uncommitted changes to the router's sources (data-plane/src, proto) when the run started. */
  dirty: string[];
}

/**
 * The router runs from a copy of dist/ taken at the start: a build during the run (someone
 * working in the checkout) would otherwise change the code between the first router and a
 * later one. package.json and node_modules sit next to the copy so that it loads as usual.
 */
export async function snapshotRouterCode(runDir: string): Promise<RouterCode> {
  const root = sourcePath(import.meta.url, '..', '..');
  // ROUTER_DIST: another build (a saved copy of dist/) to measure, to compare two builds.
  const other = process.env['ROUTER_DIST'];
  const dist = other === undefined || other === '' ? path.join(root, 'dist') : path.resolve(other);
  const copy = path.join(runDir, 'code');
  await cp(dist, path.join(copy, 'dist'), { recursive: true });
  await symlink(path.join(root, 'node_modules'), path.join(copy, 'node_modules'));
  // "type": "module" makes the compiled .js files ES modules.
  await cp(path.join(root, 'package.json'), path.join(copy, 'package.json'));
  const hash = createHash('sha256');
  for (const dir of ['data-plane/src', 'proto']) {
    const files = (await readdir(path.join(copy, 'dist', dir), { recursive: true })).filter((f) => f.endsWith('.js')).sort();
    for (const f of files) hash.update(f).update(await readFile(path.join(copy, 'dist', dir, f)));
  }
  // trimEnd only: porcelain lines start with a status column that may be a space.
  const git = async (args: string[]): Promise<string> => (await run('git', ['-C', root, ...args])).stdout.trimEnd();
  const fingerprint = hash.digest('hex').slice(0, 12);
  const entry = path.join(copy, 'dist', 'data-plane', 'src', 'main.js');
  if (dist !== path.join(root, 'dist')) return { entry, fingerprint, commit: `ROUTER_DIST=${dist}`, dirty: [] };
  return {
    entry,
    fingerprint,
    commit: (await git(['rev-parse', '--short', 'HEAD'])) || 'unknown',
    dirty: (await git(['status', '--porcelain', '--', 'data-plane/src', 'proto'])).split('\n').filter(Boolean).map((l) => l.slice(3)),
  };
}

/** `extraNodeArgs`: after ROUTER_NODE_ARGS (the memory part adds an inspector). */
export async function startRouter(code: RouterCode, redisUrl: string, logFile: string, env: Record<string, string>, extraNodeArgs: string[] = []): Promise<RouterProcess> {
  const entry = code.entry;
  // The HTTPS listener always starts: on a free port too, never the default 8443 another run may hold.
  const [port, adminPort, freeHttpsPort] = await freePorts(3);
  const httpsPort = env['ROUTER_HTTPS_PORT'] ?? String(freeHttpsPort);
  // ROUTER_NODE_ARGS lets a run profile the router (--cpu-prof); cluster workers inherit the flags.
  const nodeArgs = [...(process.env['ROUTER_NODE_ARGS'] ?? '').split(' ').filter(Boolean), ...extraNodeArgs];
  const child = spawnLogged('router', process.execPath, [...nodeArgs, entry], {
    ...process.env,
    REDIS_URL: redisUrl,
    REDIS_PREFIX: PREFIX,
    ROUTER_HOST: HOST,
    ROUTER_HTTP_PORT: String(port),
    ROUTER_HTTPS_PORT: httpsPort,
    ROUTER_ADMIN_HOST: HOST,
    ROUTER_ADMIN_PORT: String(adminPort),
    ROUTER_WORKERS: process.env['ROUTER_WORKERS'] ?? '2',
    // Open WebSockets hold a drain for its whole length: stopping must not take 30 s.
    ROUTER_DRAIN_TIMEOUT: '2000',
    LOG_LEVEL: 'info',
    ...env,
  }, logFile);
  await waitUntil('"router listening" in its log', async () => (await readText(logFile)).includes('"msg":"router listening"'), 20_000, child);
  await waitUntil('router /readyz', () => fetch(`http://${HOST}:${adminPort}/readyz`).then((r) => r.ok, () => false), 20_000, child);
  // The log also holds every access line (hundreds of MB after a throughput run): grep, not readFile.
  const primaryLines = async (): Promise<string[]> => (await run('grep', ['-F', '"msg":"router worker', logFile], 30_000)).stdout.split('\n');
  const workerPids = async (): Promise<Map<number, number>> => {
    const pids = new Map<number, number>();
    for (const line of await primaryLines()) {
      if (!line.includes('"msg":"router worker listening"')) continue;
      try {
        const rec = JSON.parse(line) as { worker?: number; workerPid?: number };
        if (rec.worker !== undefined && rec.workerPid !== undefined) pids.set(rec.worker, rec.workerPid);
      } catch {
        // an access line cut in the middle by a concurrent write: not ours
      }
    }
    // A single-process router (ROUTER_WORKERS=1) is its own only worker.
    if (pids.size === 0) pids.set(1, child.pid);
    return pids;
  };
  const workerDeaths = async (): Promise<number> => (await primaryLines()).filter((l) => l.includes('"msg":"router worker died')).length;
  return { child, port: port!, httpsPort: Number(httpsPort), adminPort: adminPort!, logFile, workerPids, workerDeaths };
}

/** Warning and error lines in a router's log, and the first few of them (the log is deleted with a successful run). */
export async function routerLogCounts(router: RouterProcess): Promise<{ errorLines: number; warnLines: number; samples: string[] }> {
  const count = async (needle: string): Promise<number> => Number((await run('grep', ['-c', '-F', needle, router.logFile], 30_000)).stdout.trim() || 0);
  const first = (await run('grep', ['-m', '5', '-E', '"level":(40|50|60)', router.logFile], 30_000)).stdout.split('\n').filter(Boolean);
  const samples = first.map((line) => {
    try {
      const rec = JSON.parse(line) as { level?: number; msg?: string; err?: unknown };
      return `level ${rec.level}: ${rec.msg ?? ''}${rec.err !== undefined ? ` (${typeof rec.err === 'string' ? rec.err : JSON.stringify(rec.err).slice(0, 200)})` : ''}`;
    } catch {
      return line.slice(0, 200);
    }
  });
  return { errorLines: (await count('"level":50')) + (await count('"level":60')), warnLines: await count('"level":40'), samples };
}

/** VmRSS of a process in MiB, NaN when it is gone. */
export async function rssMiB(pid: number): Promise<number> {
  const status = await readText(`/proc/${pid}/status`);
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return m === null ? NaN : Number(m[1]) / 1024;
}

/** Direct children of `pid` (nginx's workers, which a reload replaces). */
export async function childPids(pid: number): Promise<number[]> {
  const { stdout } = await run('pgrep', ['-P', String(pid)]);
  return stdout.split('\n').filter(Boolean).map(Number);
}

/** CPU time used so far by each of `pids`, user and system, in ms (clock ticks of 10 ms). */
export async function cpuMs(pids: number[]): Promise<{ user: number; sys: number }> {
  let user = 0;
  let sys = 0;
  for (const pid of pids) {
    const stat = await readText(`/proc/${pid}/stat`);
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    user += Number(fields[11] ?? 0) * 10;
    sys += Number(fields[12] ?? 0) * 10;
  }
  return { user, sys };
}

/** The minimal Node proxy (node-floor.ts) in `workers` cluster workers, in front of `upstreams`. */
export async function startNodeFloor(runDir: string, upstreams: number[], workers: number): Promise<{ child: Child; port: number }> {
  return startFloor('node floor', 'node-floor.js', {}, runDir, upstreams, workers);
}

/** One of the floor proxies of loadtest/router-bench (`file`), in `workers` cluster workers. */
export async function startFloor(name: string, file: string, env: Record<string, string>, runDir: string, upstreams: number[], workers: number): Promise<{ child: Child; port: number }> {
  const entry = sourcePath(import.meta.url, '..', '..', 'dist', 'loadtest', 'router-bench', file);
  const port = await freePort();
  const child = spawnLogged(name, process.execPath, [entry], { ...process.env, ...env, FLOOR_PORT: String(port), FLOOR_UPSTREAMS: upstreams.join(','), FLOOR_WORKERS: String(workers) }, path.join(runDir, `${name.replace(/\W+/g, '-')}.log`));
  await waitUntil(`the ${name} proxy listening`, () => canConnect(port), 10_000, child);
  return { child, port };
}
