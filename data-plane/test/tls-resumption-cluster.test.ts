import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import tls from 'node:tls';
import { pino } from 'pino';
import { EncryptionKey, KeyRing } from '../../proto/key-envelope.js';
import { sourcePath } from '../../proto/source-path.js';
import { openTicketKey } from '../../proto/ticket-key.js';
import { startHarness, TEST_KEY_ENCRYPTION_KEY, type Harness } from '../../test-support/control-plane.js';
import { redisUrl } from '../../test-support/redis.js';
import { eventually } from '../../test-support/router.js';
import { tlsHandshake } from '../../test-support/tls-client.js';
import { loadRouterConfig } from '../src/config.js';
import { startRouter, type Router } from '../src/router.js';
import { freePort } from '../../test-support/router-process.js';

/**
 * A short period, so the tests see the workers switch keys after Node's cluster handed the
 * first worker's key to the others at listen() (which alone would leave them apart).
 */
const PERIOD_MS = 3000;
const ring = new KeyRing(EncryptionKey.fromBase64(TEST_KEY_ENCRYPTION_KEY));

interface WorkerTls {
  handshakes: number;
  resumed: number;
  ticketKeyEpoch: number;
  ticketKeyShared: boolean;
  ticketKeyName: string;
}

let h: Harness;
let child: ChildProcess;
let httpsPort: number;
let adminPort: number;
/** Another router of the fleet, in this process: another process, other argv, same keys. */
let single: Router;
const lines: Array<Record<string, unknown>> = [];

before(async () => {
  h = await startHarness('cluster-tls');
  httpsPort = await freePort();
  adminPort = await freePort();
  const env = {
    REDIS_URL: redisUrl(),
    REDIS_PREFIX: h.prefix,
    ROUTER_HOST: '127.0.0.1',
    ROUTER_HTTP_PORT: String(await freePort()),
    ROUTER_HTTPS_PORT: String(httpsPort),
    ROUTER_ADMIN_PORT: String(adminPort),
    ROUTER_WORKERS: '2',
    KEY_ENCRYPTION_KEY: TEST_KEY_ENCRYPTION_KEY,
    TLS_TICKET_KEY_ROTATE: String(PERIOD_MS),
    LOG_LEVEL: 'info',
  };
  child = spawn(process.execPath, [sourcePath(import.meta.url, '..', '..', 'dist', 'data-plane', 'src', 'main.js')], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not JSON: ignore
    }
  });
  await eventually(async () => lines.some((l) => l['msg'] === 'router listening'), 20_000, 20);
  const config = loadRouterConfig({ ...env, ROUTER_WORKERS: '1', LOG_LEVEL: 'silent' });
  single = await startRouter(config, pino({ level: 'silent' }), { accessLog: () => undefined, port: 0, httpsPort: 0 });
});

after(async () => {
  if (child.exitCode === null) child.kill('SIGKILL');
  await single.close();
  await h.close();
});

/** Each worker's TLS detail from the primary's /readyz, by worker id. */
async function workers(): Promise<Map<number, WorkerTls>> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
  const body = (await res.json()) as { workers: Array<{ id: number; tls?: WorkerTls }> };
  const out = new Map<number, WorkerTls>();
  for (const w of body.workers) if (w.tls !== undefined) out.set(w.id, w.tls);
  return out;
}

const epochNow = (): number => Math.floor(Date.now() / PERIOD_MS);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Runs `fn` well inside one key window, once every worker reports that window's shared key,
 * and again if the window changed meanwhile: a switch legitimately stops resumption (one
 * full handshake), which is not what these tests are about. Returns the window.
 */
async function inOneWindow(fn: (epoch: number) => Promise<void>): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    // Start 300 ms after a switch (workers' timers may run late on a busy machine).
    const into = Date.now() % PERIOD_MS;
    if (into < 300 || into > PERIOD_MS - 1500) await sleep((PERIOD_MS - into + 300) % PERIOD_MS);
    const epoch = epochNow();
    await eventually(async () => [...(await workers()).values()].every((w) => w.ticketKeyShared && w.ticketKeyEpoch === epoch), 2000, 20);
    await fn(epoch);
    if (epochNow() === epoch || attempt >= 4) return epoch;
  }
}

/** The name (first 16 bytes) of the shared key of `epoch`, from its sealed record. */
async function keyName(epoch: number): Promise<string> {
  const raw = await h.redis.get(h.keys.ticketKey(PERIOD_MS, epoch));
  assert.ok(raw !== null, `the record of window ${epoch}`);
  return openTicketKey(raw, PERIOD_MS, epoch, ring).subarray(0, 16).toString('hex');
}

/** The key name a worker sealed its TLS 1.2 ticket under (RFC 5077 layout: name first). */
function ticketKeyName(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, maxVersion: 'TLSv1.2' }, () => {
      const ticket = socket.getTLSTicket();
      socket.end();
      socket.once('close', () => (ticket === undefined ? reject(new Error('no ticket')) : resolve(ticket.subarray(0, 16).toString('hex'))));
    });
    socket.once('error', reject);
    socket.resume();
  });
}

async function allWorkersUseTheSharedKey(): Promise<void> {
  const before = await workers();
  await inOneWindow(async (epoch) => {
    const expected = await keyName(epoch);
    for (let i = 0; i < 6; i++) assert.equal(await ticketKeyName(httpsPort), expected, `connection ${i}: the ticket is sealed under the window's shared key`);
  });
  const after = await workers();
  for (const [id, w] of after) assert.ok(w.handshakes > (before.get(id)?.handshakes ?? 0), `worker ${id} took some of the connections`);
}

test('after a key switch every worker issues tickets under the shared key of the window', async () => {
  const started = epochNow();
  await eventually(async () => epochNow() > started, 2 * PERIOD_MS, 50);
  await allWorkersUseTheSharedKey();
  const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  assert.match(metrics, /^router_tls_ticket_key_shared 1$/m);
});

for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as tls.SecureVersion[]) {
  test(`${maxVersion}: a session issued by one worker resumes on the other`, async () => {
    await inOneWindow(async () => {
      const before = await workers();
      const first = await tlsHandshake(httpsPort, { maxVersion, wantSession: true });
      assert.equal(first.reused, false);
      const issued = await workers();
      const issuers = [...issued].filter(([id, w]) => w.handshakes > (before.get(id)?.handshakes ?? 0)).map(([id]) => id);
      assert.equal(issuers.length, 1, 'one worker did the full handshake');
      const other = [...issued.keys()].find((id) => id !== issuers[0])!;
      // Round-robin accept: a few connections are enough to reach both workers.
      for (let i = 0; i < 6; i++) assert.equal((await tlsHandshake(httpsPort, { maxVersion, session: first.session })).reused, true, `connection ${i}`);
      const after = await workers();
      assert.ok(after.get(other)!.resumed > issued.get(other)!.resumed, `worker ${other} resumed a session worker ${issuers[0]} issued`);
    });
  });
}

test('a session from another router process resumes on the cluster, and the reverse', async () => {
  for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as tls.SecureVersion[]) {
    await inOneWindow(async () => {
      const fromSingle = await tlsHandshake(single.httpsPort, { maxVersion, wantSession: true });
      assert.equal((await tlsHandshake(httpsPort, { maxVersion, session: fromSingle.session })).reused, true, maxVersion);
      const fromCluster = await tlsHandshake(httpsPort, { maxVersion, wantSession: true });
      assert.equal((await tlsHandshake(single.httpsPort, { maxVersion, session: fromCluster.session })).reused, true, maxVersion);
    });
  }
});

test('a replacement worker uses the current shared key, not the one Node handed out at start', async () => {
  const victim = lines.find((l) => l['msg'] === 'router worker listening')!['workerPid'] as number;
  const startedIn = Number(lines.find((l) => l['msg'] === 'router listening')!['time']);
  // Node hands a replacement the key the first worker had at start: from another window by now.
  assert.ok(epochNow() > Math.floor(startedIn / PERIOD_MS), 'the cluster started in an earlier window');
  const mark = lines.length;
  process.kill(victim, 'SIGKILL');
  await eventually(async () => lines.slice(mark).some((l) => l['msg'] === 'router worker listening' && l['workerPid'] !== victim), 15_000, 20);
  // At once, before its next switch could mend it: the key installed in each worker's TLS
  // server is the shared key of the window that worker reports.
  let replaced: Map<number, WorkerTls> = new Map();
  await eventually(async () => {
    replaced = await workers();
    return replaced.size === 2;
  }, 5000, 20);
  for (const [id, w] of replaced) {
    assert.equal(w.ticketKeyShared, true, `worker ${id}`);
    assert.equal(w.ticketKeyName, await keyName(w.ticketKeyEpoch), `worker ${id}: the installed key is the window's shared key`);
  }
  await allWorkersUseTheSharedKey();
});
