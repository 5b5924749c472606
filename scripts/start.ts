/**
 * `npm start`: the whole platform on one machine, for development. Starts a persistent
 * redis-server (unless REDIS_URL is set), then each service as a child process in order,
 * waiting for each to say it is listening, and prints how to talk to it. Ctrl-C stops the
 * services first and Redis last, so none of them logs a lost connection on the way out.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { signBody } from '../proto/hook-signature.js';
import { EncryptionKey } from '../proto/key-envelope.js';
import { startDemoApp, type DemoApp } from './demo-app.js';
import { RedisServerMissingError, startEmbeddedRedis, type EmbeddedRedis } from './embedded-redis.js';

interface ServiceSpec {
  name: string;
  /** Compiled entry point, relative to the repository root. */
  entry: string;
  /** A line of its output that means it is serving. */
  readyPattern: RegExp;
  /** Added to the environment every service gets. */
  env?: NodeJS.ProcessEnv;
}

// Started in this order and stopped in reverse: a service may depend on those above it.
const SERVICES: ServiceSpec[] = [
  { name: 'control-plane', entry: 'dist/control-plane/src/main.js', readyPattern: /"msg":"control plane listening"/ },
  // Before the router, which ships its access logs there from its first request.
  { name: 'log-shipper', entry: 'dist/log-shipper/src/main.js', readyPattern: /"msg":"log shipper listening"/ },
  { name: 'router', entry: 'dist/data-plane/src/main.js', readyPattern: /"msg":"router listening"/ },
];

const ROOT = process.cwd();
const DATA_DIR = join(ROOT, '.data');
const TOKEN_FILE = join(DATA_DIR, 'dev-token');
const KEY_FILE = join(DATA_DIR, 'key-encryption-key');
const READY_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 10_000;

interface Running {
  spec: ServiceSpec;
  child: ChildProcess;
  exited: Promise<void>;
  /** The line that matched readyPattern: services log their actual addresses there. */
  readyLine: string;
}

const running: Running[] = [];
let redis: EmbeddedRedis | undefined;
let demo: DemoApp | undefined;
let shuttingDown = false;

/** Reused across runs so curl commands and clients configured once keep working. */
async function developmentToken(): Promise<string> {
  await mkdir(DATA_DIR, { recursive: true });
  try {
    const existing = (await readFile(TOKEN_FILE, 'utf8')).trim();
    if (existing.length >= 16) {
      await chmod(TOKEN_FILE, 0o600);
      return existing;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const token = randomBytes(32).toString('base64url');
  await writeFile(TOKEN_FILE, `${token}\n`, { mode: 0o600 });
  await chmod(TOKEN_FILE, 0o600);
  return token;
}

/**
 * Reused across runs: the embedded Redis keeps its records, and private keys sealed with a
 * lost key could never be opened again. A damaged file is therefore an error, not replaced.
 */
async function developmentEncryptionKey(): Promise<EncryptionKey> {
  await mkdir(DATA_DIR, { recursive: true });
  try {
    const existing = await readFile(KEY_FILE, 'utf8');
    await chmod(KEY_FILE, 0o600);
    try {
      return EncryptionKey.fromBase64(existing);
    } catch (err) {
      throw new Error(`${KEY_FILE} ${(err as Error).message}: restore it, or delete it together with .data/redis (its certificates cannot be decrypted without it)`);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const key = EncryptionKey.generate();
  await writeFile(KEY_FILE, `${key.toBase64()}\n`, { mode: 0o600, flag: 'wx' });
  return key;
}

function pipeLines(stream: NodeJS.ReadableStream | null, out: NodeJS.WriteStream, prefix: string, onLine: (line: string) => void): void {
  if (stream === null) return;
  createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
    out.write(`${prefix}${line}\n`);
    onLine(line);
  });
}

async function startService(spec: ServiceSpec, env: NodeJS.ProcessEnv): Promise<Running> {
  const child = spawn(process.execPath, [resolve(ROOT, spec.entry)], {
    cwd: ROOT,
    env: { ...env, ...spec.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Own process group: Ctrl-C reaches only us, and we stop the services in order.
    detached: true,
  });
  const exited = new Promise<void>((resolveExit) => {
    child.once('exit', () => resolveExit());
    child.once('error', () => {
      if (child.pid === undefined) resolveExit();
    });
  });
  // Detached children would outlive us if we died some other way than through shutdown().
  const killOnExit = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  };
  process.once('exit', killOnExit);
  void exited.then(() => process.removeListener('exit', killOnExit));

  const ready = new Promise<string>((resolveReady, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${spec.name} did not report ready within ${READY_TIMEOUT_MS / 1000} s (waited for ${spec.readyPattern})`)),
      READY_TIMEOUT_MS,
    );
    const onLine = (line: string): void => {
      if (!spec.readyPattern.test(line)) return;
      clearTimeout(timer);
      resolveReady(line);
    };
    pipeLines(child.stdout, process.stdout, `[${spec.name}] `, onLine);
    pipeLines(child.stderr, process.stderr, `[${spec.name}] `, onLine);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`could not run ${spec.name}: ${err.message}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${spec.name} exited during start-up (${describeExit(code, signal)}); its output is above`));
    });
  });

  const entry: Running = { spec, child, exited, readyLine: '' };
  running.push(entry);
  entry.readyLine = await ready;
  void exited.then(() => {
    if (!shuttingDown) void shutdown(1, `${spec.name} exited unexpectedly (${describeExit(child.exitCode, child.signalCode)})`);
  });
  return entry;
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal !== null ? `signal ${signal}` : `code ${code}`;
}

async function stopService(service: Running, signal: NodeJS.Signals): Promise<void> {
  const { child, exited } = service;
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    exited.then(() => false),
    new Promise<boolean>((r) => {
      timer = setTimeout(() => r(true), STOP_GRACE_MS);
    }),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    console.error(`${service.spec.name} did not stop within ${STOP_GRACE_MS / 1000} s: killing it`);
    child.kill('SIGKILL');
    await exited;
  }
}

async function shutdown(code: number, reason: string): Promise<never> {
  if (shuttingDown) {
    // A second Ctrl-C means "now": do not wait for graceful stops.
    for (const service of running) service.child.kill('SIGKILL');
    return new Promise<never>(() => {});
  }
  shuttingDown = true;
  console.error(`\n${reason}: stopping`);
  for (const service of [...running].reverse()) await stopService(service, 'SIGTERM');
  await demo?.close();
  await redis?.stop();
  process.exit(code);
}

function parseJson(line: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** The banner may end up in a terminal recording or a bug report. */
function withoutPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(REDIS_URL is not a URL)';
  }
}

/** A wildcard bind address is not something curl can connect to. */
function reachable(address: string): string {
  return address.replace('//0.0.0.0:', '//127.0.0.1:').replace(/^0\.0\.0\.0:/, '127.0.0.1:');
}

/** Deploys the demo app through the control plane's API, like a platform's deploy hook would. */
async function deployDemo(rest: string, env: NodeJS.ProcessEnv, token: string | undefined, port: number): Promise<void> {
  const seq = Date.now();
  const body = JSON.stringify({ id: `demo-${seq}`, app: 'demo', seq, type: 'deploy', containers: [{ id: 'demo-1', host: '127.0.0.1', port }] });
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== undefined) headers['authorization'] = `Bearer ${token}`;
  else headers['x-platform-signature'] = signBody(env['HOOK_SECRET'] ?? '', body);
  const res = await fetch(`${rest}/v1/events`, { method: 'POST', headers, body });
  if (!res.ok) throw new Error(`deploying the demo app failed: ${res.status} ${await res.text()}`);
}

function restUrl(controlPlane: Running): string {
  const listening = parseJson(controlPlane.readyLine);
  const host = process.env['CONTROL_PLANE_HOST'] || '127.0.0.1';
  return reachable(typeof listening['rest'] === 'string' ? listening['rest'] : `http://${host}:${process.env['CONTROL_PLANE_PORT'] || '4000'}`);
}

interface KeyNote {
  kid: string;
  development: boolean;
}

function banner(controlPlane: Running, router: Running | undefined, redisUrl: string, redisKind: string, token: string | undefined, tokenIsDev: boolean, key: KeyNote): string {
  const listening = parseJson(controlPlane.readyLine);
  const host = process.env['CONTROL_PLANE_HOST'] || '127.0.0.1';
  const rest = reachable(typeof listening['rest'] === 'string' ? listening['rest'] : `http://${host}:${process.env['CONTROL_PLANE_PORT'] || '4000'}`);
  const grpc = reachable(typeof listening['grpc'] === 'string' ? listening['grpc'] : `${host}:${process.env['CONTROL_PLANE_GRPC_PORT'] || '4001'}`);
  const domain = process.env['PLATFORM_DOMAIN'] || 'localhost';
  const routed = router === undefined ? {} : parseJson(router.readyLine);
  const routerUrl = reachable(typeof routed['http'] === 'string' ? routed['http'] : `http://127.0.0.1:${process.env['ROUTER_HTTP_PORT'] || '8080'}`);
  const routerAdmin = reachable(typeof routed['admin'] === 'string' ? routed['admin'] : `http://127.0.0.1:${process.env['ROUTER_ADMIN_PORT'] || '9090'}`);
  const routerPort = new URL(routerUrl).port;
  // Seconds since the epoch: a later `npm start` prints a higher seq, so the pasted event is
  // never refused as older than the one a previous run applied.
  const seq = Math.floor(Date.now() / 1000);
  const event = JSON.stringify({
    id: `evt-${seq}`,
    app: 'my-app',
    seq,
    type: 'deploy',
    containers: [{ id: 'web-1', host: '127.0.0.1', port: 3000 }],
  });

  const lines = [
    '',
    '==================================================================',
    ' Platform running. Ctrl-C stops it.',
    '',
    ` REST API    ${rest}`,
    ` gRPC        ${grpc}`,
    ` Router      ${routerUrl}   (admin: ${routerAdmin}/metrics, /readyz)`,
    ` Log shipper http://127.0.0.1:${process.env['LOG_SHIPPER_PORT'] || '5000'}   (per-app files in ${process.env['LOG_DIR'] || join(DATA_DIR, 'logs')})`,
    ` Redis       ${withoutPassword(redisUrl)} (${redisKind})`,
  ];
  if (token === undefined) {
    lines.push(' Auth        HOOK_SECRET only: sign requests with X-Platform-Signature (no bearer token set)');
  } else if (tokenIsDev) {
    lines.push(` Token       ${token}`, `             DEVELOPMENT token, stored in ${TOKEN_FILE}; set CONTROL_PLANE_TOKENS for real use`);
  } else {
    lines.push(' Token       the first of CONTROL_PLANE_TOKENS');
  }
  if (key.development) {
    lines.push(` Keys        private keys encrypted with a DEVELOPMENT key (kid ${key.kid}), stored in ${KEY_FILE};`, '             set KEY_ENCRYPTION_KEY for real use');
  } else {
    lines.push(` Keys        private keys encrypted with KEY_ENCRYPTION_KEY (kid ${key.kid})`);
  }
  lines.push(
    '',
    ' Try it — the demo app, deployed through the control plane, answers through the router:',
    '',
    `   curl -s http://demo.${domain}:${routerPort}/`,
    '   npm run logs -- demo --follow        # its access log, live (routerctl logs)',
    '   npm run routerctl -- routers         # the fleet: workers, code and config version, lag',
    '',
    ' Deploy your own (an app listening on 127.0.0.1:3000):',
    '',
    `   export TOKEN='${token ?? '<your token>'}'`,
    `   curl -s -w '\\n' -X POST ${rest}/v1/events \\`,
    `     -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\`,
    `     -d '${event}'`,
    `   curl -s -w '\\n' -H "Authorization: Bearer $TOKEN" ${rest}/v1/routes/my-app.${domain}`,
    '==================================================================',
    '',
  );
  return lines.join('\n');
}

async function main(): Promise<void> {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => void shutdown(0, `received ${signal}`));
  }

  const env: NodeJS.ProcessEnv = { ...process.env };
  let redisKind = 'external, from REDIS_URL';
  if (env['REDIS_URL'] === undefined || env['REDIS_URL'] === '') {
    const persistDir = join(DATA_DIR, 'redis');
    try {
      redis = await startEmbeddedRedis({ persistDir, logPrefix: '[redis] ', ownProcessGroup: true });
    } catch (err) {
      console.error(err instanceof RedisServerMissingError ? err.message : `could not start redis-server: ${(err as Error).message}`);
      process.exit(1);
    }
    env['REDIS_URL'] = redis.url;
    redisKind = `embedded, data in ${persistDir}`;
    void redis.exited.then(() => {
      if (!shuttingDown) void shutdown(1, 'redis-server exited unexpectedly');
    });
  }

  let token = env['CONTROL_PLANE_TOKENS']?.split(',').map((t) => t.trim()).find((t) => t !== '');
  let tokenIsDev = false;
  if (token === undefined && (env['HOOK_SECRET'] === undefined || env['HOOK_SECRET'] === '')) {
    token = await developmentToken();
    tokenIsDev = true;
    env['CONTROL_PLANE_TOKENS'] = token;
  }

  // The log-shipper keeps per-app files under .data/logs and takes the development token
  // unless told otherwise; the router ships to it.
  env['LOG_DIR'] ||= join(DATA_DIR, 'logs');
  env['LOG_SHIPPER_PORT'] ||= '5000';
  env['LOG_SHIPPER_TOKEN'] ||= token ?? (await developmentToken());
  env['LOG_SHIPPER_URL'] ||= `127.0.0.1:${env['LOG_SHIPPER_PORT']}`;

  let key: KeyNote;
  try {
    if (env['KEY_ENCRYPTION_KEY'] === undefined || env['KEY_ENCRYPTION_KEY'] === '') {
      const generated = await developmentEncryptionKey();
      env['KEY_ENCRYPTION_KEY'] = generated.toBase64();
      key = { kid: generated.kid, development: true };
    } else {
      // Checked here too so the banner can name the key; the services check it again.
      key = { kid: EncryptionKey.fromBase64(env['KEY_ENCRYPTION_KEY']).kid, development: false };
    }
  } catch (err) {
    await shutdown(1, `KEY_ENCRYPTION_KEY: ${(err as Error).message}`);
    return;
  }

  for (const spec of SERVICES) {
    try {
      await startService(spec, env);
    } catch (err) {
      // During a Ctrl-C the service's exit is expected, and shutdown() is already under way.
      if (shuttingDown) return;
      await shutdown(1, (err as Error).message);
    }
  }

  const controlPlane = running.find((r) => r.spec.name === 'control-plane');
  const router = running.find((r) => r.spec.name === 'router');
  if (controlPlane === undefined) return;
  try {
    demo = await startDemoApp('demo');
    await deployDemo(restUrl(controlPlane), env, token, demo.port);
  } catch (err) {
    await shutdown(1, (err as Error).message);
    return;
  }
  process.stdout.write(banner(controlPlane, router, env['REDIS_URL'] ?? '', redisKind, token, tokenIsDev, key));
}

main().catch((err: unknown) => {
  if (!shuttingDown) void shutdown(1, `npm start failed: ${(err as Error).stack ?? String(err)}`);
});
