/**
 * A real redis-server as a child process, for `npm start` and `npm test`: the services and
 * their tests talk to the same Redis a deployment runs, never a fake. Loopback only, so a
 * developer machine never exposes an unauthenticated Redis.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';

export interface EmbeddedRedisOptions {
  /** Append-only file kept in this directory (created if missing); unset: nothing is ever written to disk. */
  persistDir?: string;
  /** Default: a free port; if another process takes it before redis binds, a new one is tried. */
  port?: number;
  /** When set, redis-server's own log lines are copied to stdout behind this prefix. */
  logPrefix?: string;
  /**
   * Run redis in its own process group, so a terminal's Ctrl-C reaches only the parent,
   * which can then stop its other children before Redis (they would log errors otherwise).
   * Leave false where the parent may die from a signal it does not handle (a test file
   * killed by the runner): the group signal is then what takes redis down with it.
   */
  ownProcessGroup?: boolean;
}

export interface EmbeddedRedis {
  url: string;
  port: number;
  pid: number;
  /** Settles when redis-server has exited, whether through stop() or not (a crash, OOM kill). */
  exited: Promise<void>;
  /** SIGTERM, so redis flushes the AOF; SIGKILL after 5 s. Safe to call more than once. */
  stop(): Promise<void>;
}

export class RedisServerMissingError extends Error {
  override readonly name = 'RedisServerMissingError';
  constructor() {
    super('redis-server is not installed: run `sudo apt-get install -y redis-server` (Debian/Ubuntu)');
  }
}

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 5_000;
const PORT_ATTEMPTS = 5;
const TAIL_BYTES = 8_192;

// Debian installs it in /usr/bin, but sbin is often missing from a non-root PATH.
const FALLBACK_DIRS = ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin'];

export async function findRedisServer(): Promise<string> {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== ''), ...FALLBACK_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, 'redis-server');
    try {
      await access(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  throw new RedisServerMissingError();
}

export async function startEmbeddedRedis(opts: EmbeddedRedisOptions = {}): Promise<EmbeddedRedis> {
  const { persistDir, port, logPrefix, ownProcessGroup = false } = opts;
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) {
    throw new RangeError(`port must be an integer between 1 and 65535 (got ${port})`);
  }
  const binary = await findRedisServer();
  const dir = persistDir === undefined ? undefined : resolve(persistDir);
  if (dir !== undefined) await mkdir(dir, { recursive: true });

  // Only a port we picked ourselves can be lost to a race, so only then is retrying right.
  const attempts = port === undefined ? PORT_ATTEMPTS : 1;
  let lastError: Error | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const chosen = port ?? (await findFreePort());
    try {
      return await launch(binary, chosen, dir, logPrefix, ownProcessGroup);
    } catch (err) {
      lastError = err as Error;
      if (!(err instanceof PortInUse)) throw err;
    }
  }
  throw lastError ?? new Error('redis-server did not start');
}

class PortInUse extends Error {}

function serverArgs(port: number, dir: string | undefined): string[] {
  const args = [
    '--bind', HOST,
    '--port', String(port),
    '--protected-mode', 'yes',
    '--daemonize', 'no',
    '--logfile', '',
    '--loglevel', 'warning',
  ];
  // No RDB snapshots even when persisting: the AOF alone is the durable copy, and a failed
  // snapshot at shutdown would make redis refuse SIGTERM.
  args.push('--save', '');
  if (dir === undefined) {
    // tmpdir, not the repo: an explicit SAVE from a test must not leave dump.rdb in the checkout.
    args.push('--appendonly', 'no', '--dir', tmpdir());
  } else {
    args.push('--appendonly', 'yes', '--appendfsync', 'everysec', '--dir', dir);
  }
  return args;
}

async function launch(
  binary: string,
  port: number,
  dir: string | undefined,
  logPrefix: string | undefined,
  ownProcessGroup: boolean,
): Promise<EmbeddedRedis> {
  const child = spawn(binary, serverArgs(port, dir), {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: ownProcessGroup,
  });
  // spawn reports a missing/unrunnable binary asynchronously; capture it so waitReady can.
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });

  let tail = '';
  let pending = '';
  const onOutput = (chunk: Buffer): void => {
    const text = chunk.toString('utf8');
    tail = (tail + text).slice(-TAIL_BYTES);
    if (logPrefix === undefined) return;
    pending += text;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) if (line !== '') process.stdout.write(`${logPrefix}${line}\n`);
  };
  child.stdout?.on('data', onOutput);
  child.stderr?.on('data', onOutput);

  // 'close', not 'exit': the output must be fully read before a failure is explained from it.
  const exited = new Promise<void>((resolveExit) => {
    child.once('close', () => {
      if (logPrefix !== undefined && pending !== '') process.stdout.write(`${logPrefix}${pending}\n`);
      resolveExit();
    });
    // A binary that never started emits 'error' and no 'exit'.
    child.once('error', () => {
      if (child.pid === undefined) resolveExit();
    });
  });
  // 'exit' handlers must be synchronous: a signal is all we can still send.
  const killOnParentExit = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  };
  process.once('exit', killOnParentExit);
  void exited.then(() => process.removeListener('exit', killOnParentExit));

  const ready = await waitReady(port, child, () => spawnError);
  if (ready !== 'ready') {
    await terminate(child, exited);
    if (spawnError !== undefined) throw new Error(`could not run ${binary}: ${spawnError.message}`);
    const output = tail.trim() === '' ? '(no output)' : tail.trim();
    if (/address already in use/i.test(tail)) throw new PortInUse(`port ${port} is taken:\n${output}`);
    const why = ready === 'exited' ? `exited (code ${child.exitCode ?? child.signalCode})` : `did not answer PING within ${READY_TIMEOUT_MS / 1000} s`;
    throw new Error(`redis-server on ${HOST}:${port} ${why}; its output:\n${output}`);
  }

  let stopping: Promise<void> | undefined;
  return {
    url: `redis://${HOST}:${port}`,
    port,
    pid: child.pid ?? -1,
    exited,
    stop: () => (stopping ??= terminate(child, exited)),
  };
}

async function terminate(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = await Promise.race([
    exited.then(() => false),
    new Promise<boolean>((r) => {
      timer = setTimeout(() => r(true), STOP_GRACE_MS);
    }),
  ]);
  clearTimeout(timer);
  if (gaveUp) {
    child.kill('SIGKILL');
    await exited;
  }
}

async function waitReady(port: number, child: ChildProcess, spawnFailed: () => Error | undefined): Promise<'ready' | 'exited' | 'timeout'> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (spawnFailed() !== undefined || child.exitCode !== null || child.signalCode !== null) return 'exited';
    // While loading a big AOF redis answers -LOADING: keep polling until it says +PONG.
    if (await pingOnce(port, child.pid)) return 'ready';
    await new Promise((r) => setTimeout(r, 50));
  }
  return 'timeout';
}

/**
 * PING, then INFO to check that the server answering is our child: when the port is already
 * taken, another redis answers PONG until ours gives up binding and exits.
 */
function pingOnce(port: number, pid: number | undefined): Promise<boolean> {
  return new Promise((resolvePing) => {
    const socket = createConnection({ host: HOST, port });
    let reply = '';
    const finish = (ok: boolean): void => {
      socket.destroy();
      resolvePing(ok);
    };
    socket.setTimeout(1_000, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write('PING\r\nINFO server\r\n'));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1');
      const firstLineEnd = reply.indexOf('\r\n');
      if (firstLineEnd === -1) return;
      if (!reply.startsWith('+PONG\r\n')) return finish(false);
      const info = reply.slice(firstLineEnd + 2);
      if (info.startsWith('-')) return finish(false);
      const header = /^\$(\d+)\r\n/.exec(info);
      if (header === null || info.length < header[0].length + Number(header[1])) return;
      finish(new RegExp(`^process_id:${pid}\r?$`, 'm').test(info));
    });
    socket.once('end', () => finish(false));
  });
}

function findFreePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolvePort(port) : reject(new Error('could not find a free port'))));
    });
  });
}
