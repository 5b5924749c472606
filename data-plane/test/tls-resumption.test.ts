import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import https from 'node:https';
import { Writable } from 'node:stream';
import type tls from 'node:tls';
import { pino, type Logger } from 'pino';
import { EncryptionKey, KeyRing } from '../../proto/key-envelope.js';
import { TicketKeyError, openTicketKey } from '../../proto/ticket-key.js';
import { createTestCa, type TestCa, type TestCert } from '../../test-support/certs.js';
import { ConfigError } from '../../proto/config/env.js';
import { TEST_KEY_ENCRYPTION_KEY } from '../../test-support/control-plane.js';
import { eventually, startStack, startUpstream, type Stack, type Upstream } from '../../test-support/router.js';
import { tlsHandshake } from '../../test-support/tls-client.js';
import { loadRouterConfig } from '../src/config.js';
import { startRouter, type Router } from '../src/router.js';

const logText: string[] = [];
const capture = (): Logger =>
  pino(
    { level: 'trace' },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        logText.push(chunk.toString());
        done();
      },
    }),
  );

let s: Stack;
let b: Router;
let ca: TestCa;
let cert: TestCert;
let web: Upstream;
const ring = new KeyRing(EncryptionKey.fromBase64(TEST_KEY_ENCRYPTION_KEY));
const NAME = 'www.resume.test';
const versions: tls.SecureVersion[] = ['TLSv1.3', 'TLSv1.2'];

const ticketKeyOf = (router: Router): Buffer => (router.httpsServer.server as https.Server).getTicketKeys();
const startSecond = (stack: Stack, overrides: Partial<Stack['config']> = {}): Promise<Router> =>
  startRouter({ ...stack.config, ...overrides }, capture(), { accessLog: () => undefined, port: 0, httpsPort: 0 });

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Runs `fn` inside one ticket key window, once every router reports it, and again (failed or
 * not) if the window changed meanwhile: a switch in the middle (rare at 12 h, frequent at
 * 3 s) is a legitimate reason for a session not to resume, not what the test is about.
 */
async function inOneWindow<T>(routers: Router[], periodMs: number, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    // Not right after a switch (timers run late on a busy machine), nor right before one.
    const into = Date.now() % periodMs;
    if (into < 300 || periodMs - into < 1500) await sleep((periodMs - into + 300) % periodMs);
    const epoch = Math.floor(Date.now() / periodMs);
    await eventually(async () => routers.every((r) => r.ticketKeys.status().epoch === epoch), 2000, 10);
    const unchanged = (): boolean => Math.floor(Date.now() / periodMs) === epoch && routers.every((r) => r.ticketKeys.status().epoch === epoch);
    try {
      const result = await fn();
      if (unchanged() || attempt >= 4) return result;
    } catch (err) {
      if (unchanged() || attempt >= 4) throw err;
    }
  }
}

before(async () => {
  s = await startStack('resume', {}, { log: capture() });
  b = await startSecond(s);
  ca = await createTestCa();
  web = await startUpstream('web');
  cert = await ca.issue({ sans: [NAME] });
  assert.equal((await s.h.deploy('shop', [web.container])).status, 200);
  assert.equal((await s.h.send({ app: 'shop', type: 'domains', domains: [NAME] })).status, 200);
  assert.equal((await s.h.send({ app: 'shop', type: 'certificate', certificate: { domain: NAME, cert: cert.chainPem, key: cert.keyPem } })).status, 200);
});

after(async () => {
  await b.close();
  await s.close();
  await web.close();
});

test('both routers of the fleet hold the same shared ticket key', async () => {
  // At once unless Redis was slower than the command timeout at start (then: retried).
  await eventually(async () => [s.router, b].every((r) => r.ticketKeys.status().shared), 10_000, 20);
  assert.equal(s.router.ticketKeys.status().epoch, Math.floor(Date.now() / s.config.ticketKeyRotateMs));
  assert.ok(ticketKeyOf(s.router).equals(ticketKeyOf(b)), 'the same 48 bytes on both TLS servers');
});

test('a session from router A resumes on router B and back, TLS 1.3 and 1.2, with SNI and without', async () => {
  const fingerprint = new X509Certificate(cert.certPem).fingerprint256;
  const resumedBefore = b.httpsServer.handshakes().resumed;
  for (const maxVersion of versions) {
    for (const servername of [NAME, undefined]) {
      const what = `${maxVersion} ${servername ?? 'no SNI'}`;
      await inOneWindow([s.router, b], s.config.ticketKeyRotateMs, async () => {
        const first = await tlsHandshake(s.router.httpsPort, { servername, maxVersion, wantSession: true });
        assert.equal(first.reused, false, what);
        assert.equal(first.protocol, maxVersion, what);
        // The certificate from Redis (SNI) or the default one: a resumed handshake sends none.
        if (servername !== undefined) assert.equal(first.fingerprint, fingerprint, what);
        const onB = await tlsHandshake(b.httpsPort, { servername, maxVersion, session: first.session });
        assert.equal(onB.reused, true, `${what}: resumed on the other router`);
        const fromB = await tlsHandshake(b.httpsPort, { servername, maxVersion, wantSession: true });
        assert.equal((await tlsHandshake(s.router.httpsPort, { servername, maxVersion, session: fromB.session })).reused, true, `${what}: and back`);
      });
    }
  }
  assert.ok(b.httpsServer.handshakes().resumed - resumedBefore >= versions.length * 2);
  const text = await b.metrics.registry.metrics();
  assert.match(text, /^router_tls_resumed_total [1-9]/m);
  assert.match(text, /^router_tls_ticket_key_shared 1$/m);
  assert.match(text, new RegExp(`^router_tls_ticket_key_epoch ${b.ticketKeys.status().epoch}$`, 'm'));
});

test('Redis holds the ticket key only sealed, bound to its window, expiring; no log line holds it', async () => {
  const { epoch } = s.router.ticketKeys.status();
  const period = s.config.ticketKeyRotateMs;
  const name = s.h.keys.ticketKey(period, epoch);
  const raw = await s.h.redis.getBuffer(name);
  assert.ok(raw !== null, 'the record exists');
  const key = ticketKeyOf(s.router);
  const text = raw.toString('utf8');
  const record = JSON.parse(text) as { v: number; key: { alg: string; kid: string } };
  assert.equal(record.v, 1);
  assert.equal(record.key.alg, 'A256GCM');
  assert.equal(record.key.kid, ring.current.kid);
  // Neither the whole key nor any of its three 16-byte parts, in any encoding.
  const parts = [key, key.subarray(0, 16), key.subarray(16, 32), key.subarray(32, 48)];
  for (const part of parts) {
    assert.ok(!raw.includes(part), 'raw key bytes in Redis');
    for (const enc of ['hex', 'base64', 'base64url'] as const) assert.ok(!text.includes(part.toString(enc)), `key bytes (${enc}) in Redis`);
  }
  assert.ok(openTicketKey(text, period, epoch, ring).equals(key), 'the sealed record opens to the key in use');
  const detail = s.router.readiness().detail as { tls: { ticketKeyName: string } };
  assert.equal(detail.tls.ticketKeyName, key.subarray(0, 16).toString('hex'), '/readyz shows the public key name only');
  assert.throws(() => openTicketKey(text, period, epoch + 1, ring), TicketKeyError, 'a record copied to another window does not open');
  const ttl = await s.h.redis.pttl(name);
  assert.ok(ttl > 0 && ttl <= 2 * period, `expires: ${ttl} ms`);

  const logs = logText.join('');
  assert.ok(logs.includes('TLS session ticket key'), 'the capture did record ticket key lines');
  for (const part of parts) {
    for (const enc of ['hex', 'base64', 'base64url'] as const) assert.ok(!logs.includes(part.toString(enc)), `key bytes (${enc}) in a log line`);
  }
});

test('without KEY_ENCRYPTION_KEY: a process-local key, said once, nothing written to Redis', async () => {
  const linesBefore = logText.length;
  const ticketRecords = async (): Promise<number> => (await s.h.redis.keys(`${s.h.prefix}tls-ticket-key:*`)).length;
  const recordsBefore = await ticketRecords();
  const local = await startSecond(s, { keyEncryptionKey: undefined, keyEncryptionKeysPrevious: undefined });
  try {
    assert.equal(local.ticketKeys.status().shared, false);
    assert.ok(!ticketKeyOf(local).equals(ticketKeyOf(s.router)));
    const fromA = await tlsHandshake(s.router.httpsPort, { wantSession: true });
    assert.equal((await tlsHandshake(local.httpsPort, { session: fromA.session })).reused, false, 'a fleet session does not resume here');
    await inOneWindow([local], s.config.ticketKeyRotateMs, async () => {
      const own = await tlsHandshake(local.httpsPort, { wantSession: true });
      assert.equal((await tlsHandshake(local.httpsPort, { session: own.session })).reused, true, 'its own sessions still resume');
    });
    assert.equal(await ticketRecords(), recordsBefore, 'no ticket key written');
    const warnings = logText.slice(linesBefore).filter((l) => l.includes('KEY_ENCRYPTION_KEY is not set'));
    assert.equal(warnings.length, 1);
    assert.match(await local.metrics.registry.metrics(), /^router_tls_ticket_key_shared 0$/m);
  } finally {
    await local.close();
  }
});

test('at a window switch both routers take the same new key: old sessions need a full handshake, new ones resume anywhere', async () => {
  const PERIOD_MS = 3000;
  const fast = await startStack('rotate', { TLS_TICKET_KEY_ROTATE: String(PERIOD_MS) }, { log: capture() });
  const other = await startSecond(fast);
  const pair = [fast.router, other];
  try {
    const { session, epoch, key } = await inOneWindow(pair, PERIOD_MS, async () => {
      const first = await tlsHandshake(fast.router.httpsPort, { wantSession: true });
      assert.equal((await tlsHandshake(other.httpsPort, { session: first.session })).reused, true);
      return { session: first.session, epoch: fast.router.ticketKeys.status().epoch, key: ticketKeyOf(fast.router) };
    });
    // Each switches to the next window's shared key (prefetched, or read at the switch).
    await eventually(async () => pair.every((r) => r.ticketKeys.status().epoch > epoch && r.ticketKeys.status().shared), 10_000, 20);
    for (const r of pair) {
      assert.equal((await tlsHandshake(r.httpsPort, { session })).reused, false, 'a ticket of the previous key is not resumed');
    }
    assert.ok(!ticketKeyOf(fast.router).equals(key), 'a new key');
    await inOneWindow(pair, PERIOD_MS, async () => {
      assert.ok(ticketKeyOf(fast.router).equals(ticketKeyOf(other)), 'both routers switched to the same key');
      const fresh = await tlsHandshake(other.httpsPort, { wantSession: true });
      assert.equal((await tlsHandshake(fast.router.httpsPort, { session: fresh.session })).reused, true, 'a new session resumes on the other router');
    });
    const now = fast.router.ticketKeys.status().epoch;
    assert.ok((await fast.h.redis.exists(fast.h.keys.ticketKey(PERIOD_MS, now))) === 1, 'the new window has its record');
    assert.equal((await fast.router.metrics.tlsTicketKeyEpoch.get()).values[0]?.value, now);
  } finally {
    await other.close();
    await fast.close();
  }
});

test('TLS_TICKET_KEY_ROTATE: 12 h by default; under a second or over a week is refused, naming it', () => {
  assert.equal(loadRouterConfig({}).ticketKeyRotateMs, 43_200_000);
  for (const bad of ['999', '604800001', '2h']) {
    assert.throws(() => loadRouterConfig({ TLS_TICKET_KEY_ROTATE: bad }), (err: unknown) => err instanceof ConfigError && err.message.includes('TLS_TICKET_KEY_ROTATE'));
  }
});
