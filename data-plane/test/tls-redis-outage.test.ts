import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { Redis } from 'ioredis';
import { EncryptionKey, KeyRing } from '../../proto/key-envelope.js';
import { openTicketKey } from '../../proto/ticket-key.js';
import { startEmbeddedRedis, type EmbeddedRedis } from '../../scripts/embedded-redis.js';
import { TEST_KEY_ENCRYPTION_KEY } from '../../test-support/control-plane.js';
import { createTestCa, type TestCa, type TestCert } from '../../test-support/certs.js';
import { eventually, startStack, startUpstream, type Stack, type Upstream } from '../../test-support/router.js';
import { tlsHandshake } from '../../test-support/tls-client.js';
import { DEFAULT_COMMON_NAME } from '../src/tls/default-certs.js';
import { startRouter, type Router } from '../src/router.js';

// This file owns its redis-server: it stops and restarts it.
let redis: EmbeddedRedis;
let dir: string;
/** Where the Redis that "lost its data" keeps its (new, empty) files. */
let emptyDir: string | undefined;
let s: Stack;
let ca: TestCa;
let web: Upstream;
let first: TestCert;
const CACHED = 'cached.outage.test';
const LATE = 'late.outage.test';
const fingerprint = (cert: TestCert): string => new X509Certificate(cert.certPem).fingerprint256;

/** JSON lines of one logger. */
function capture(into: Array<Record<string, unknown>>): Logger {
  return pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        into.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    }),
  );
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'router-tls-outage-'));
  redis = await startEmbeddedRedis({ persistDir: dir });
  s = await startStack('tls-outage', { REDIS_URL: redis.url, ROUTER_MAX_STALENESS: '2000' });
  ca = await createTestCa();
  web = await startUpstream('web');
  first = await ca.issue({ sans: [CACHED] });
  assert.equal((await s.h.deploy('shop', [web.container])).status, 200);
  assert.equal((await s.h.send({ app: 'shop', type: 'domains', domains: [CACHED, LATE] })).status, 200);
  const r = await s.h.send({ app: 'shop', type: 'certificate', certificate: { domain: CACHED, cert: first.chainPem, key: first.keyPem } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
});

after(async () => {
  await s.close().catch(() => undefined);
  await redis.stop();
  await web.close();
  await rm(dir, { recursive: true, force: true });
  if (emptyDir !== undefined) await rm(emptyDir, { recursive: true, force: true });
});

function httpsGet(servername: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: s.router.httpsPort, path: '/', servername, headers: { host, accept: 'application/json' }, rejectUnauthorized: false, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('Redis down during handshakes: cached certificates keep serving, new names get the default one, requests still route; back: new certificates', async () => {
  // Warm the certificate and route caches.
  await eventually(async () => (await tlsHandshake(s.router.httpsPort, { servername: CACHED })).fingerprint === fingerprint(first), 2000, 10);
  assert.equal((await httpsGet(CACHED, CACHED)).status, 200);
  const errorsBefore = (await s.router.metrics.certLookups.get()).values.find((v) => v.labels['outcome'] === 'error')?.value ?? 0;

  const port = redis.port;
  await redis.stop();

  for (let i = 0; i < 5; i++) {
    assert.equal((await tlsHandshake(s.router.httpsPort, { servername: CACHED })).fingerprint, fingerprint(first), 'a cached certificate is served without Redis');
    const res = await httpsGet(CACHED, CACHED);
    assert.equal(res.status, 200, 'routed from the route cache');
    assert.equal(res.body, 'web GET /');
  }
  // A name never seen: the lookup fails fast (no offline queue, command timeout), the
  // handshake completes with the default certificate; the bound is the test's, not an assertion.
  const unseen = await tlsHandshake(s.router.httpsPort, { servername: LATE, timeoutMs: 5000 });
  assert.equal(unseen.cn, DEFAULT_COMMON_NAME);
  const routed = await httpsGet(LATE, CACHED);
  assert.equal(routed.status, 200, 'a request under the default certificate is routed by its (cached) Host');
  const unknownRoute = await httpsGet(LATE, LATE);
  assert.equal(unknownRoute.status, 503);
  assert.equal(JSON.parse(unknownRoute.body).code, 'STORE_UNAVAILABLE');
  const errorsAfter = (await s.router.metrics.certLookups.get()).values.find((v) => v.labels['outcome'] === 'error')?.value ?? 0;
  assert.ok(errorsAfter > errorsBefore, 'the failed lookups are counted');
  // Not remembered as unknown: asked again on the next handshake, still the default.
  assert.equal((await tlsHandshake(s.router.httpsPort, { servername: LATE, timeoutMs: 5000 })).cn, DEFAULT_COMMON_NAME);

  redis = await startEmbeddedRedis({ persistDir: dir, port });
  await eventually(async () => (await s.h.get('/readyz', { auth: 'none' })).status === 200, 10_000, 50);
  await eventually(async () => s.router.readiness().ready, 10_000, 50);
  const late = await ca.issue({ sans: [LATE], keyType: 'rsa' });
  const second = await ca.issue({ sans: [CACHED], keyType: 'rsa' });
  for (const [domain, cert] of [
    [LATE, late],
    [CACHED, second],
  ] as const) {
    const r = await s.h.send({ app: 'shop', type: 'certificate', certificate: { domain, cert: cert.chainPem, key: cert.keyPem } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  await eventually(async () => (await tlsHandshake(s.router.httpsPort, { servername: LATE })).fingerprint === fingerprint(late), 5000, 20);
  await eventually(async () => (await tlsHandshake(s.router.httpsPort, { servername: CACHED })).fingerprint === fingerprint(second), 5000, 20);
  assert.equal((await httpsGet(LATE, LATE)).status, 200);
});

test('a router started while Redis is down uses a local ticket key, says so once, and joins the fleet key when Redis returns', async () => {
  const logs: Array<Record<string, unknown>> = [];
  const port = redis.port;
  await redis.stop();
  let b: Router | undefined;
  try {
    b = await startRouter(s.config, capture(logs), { accessLog: () => undefined, port: 0, httpsPort: 0 });
    const late = b;
    assert.equal(late.ticketKeys.status().shared, false);
    const fromA = await tlsHandshake(s.router.httpsPort, { wantSession: true });
    assert.equal((await tlsHandshake(late.httpsPort, { session: fromA.session })).reused, false, 'no fleet key yet');
    // Retries back off while Redis stays down; the failure is logged once.
    await eventually(async () => ((await late.metrics.tlsTicketKeyFailures.get()).values[0]?.value ?? 0) >= 3, 10_000, 50);
    const failures = logs.filter((l) => String(l['msg']).startsWith('cannot read or create the shared TLS session ticket key'));
    assert.equal(failures.length, 1, 'said once');
    assert.equal(failures[0]!['level'], 40);

    redis = await startEmbeddedRedis({ persistDir: dir, port });
    await eventually(async () => late.ticketKeys.status().shared, 10_000, 20);
    assert.ok((late.httpsServer.server as https.Server).getTicketKeys().equals((s.router.httpsServer.server as https.Server).getTicketKeys()), 'the key router A created before the outage');
    const again = await tlsHandshake(s.router.httpsPort, { wantSession: true });
    assert.equal((await tlsHandshake(late.httpsPort, { session: again.session })).reused, true, 'sessions resume across the routers again');
    assert.equal(logs.filter((l) => l['msg'] === 'shared TLS session ticket key readable again').length, 1);
  } finally {
    await b?.close();
  }
});

test('a Redis that lost its data gets the key in use back, so routers started later agree with those running', async () => {
  const tlsServer = s.router.httpsServer.server as https.Server;
  const key = tlsServer.getTicketKeys();
  const { epoch, shared } = s.router.ticketKeys.status();
  assert.equal(shared, true);
  const port = redis.port;
  await redis.stop();
  emptyDir = await mkdtemp(path.join(tmpdir(), 'router-tls-outage-empty-'));
  redis = await startEmbeddedRedis({ persistDir: emptyDir, port });
  const client = new Redis(redis.url);
  try {
    const name = s.h.keys.ticketKey(s.config.ticketKeyRotateMs, epoch);
    // On reconnecting, the router re-reads the window's key, finds none and offers its own.
    await eventually(async () => (await client.exists(name)) === 1, 10_000, 20);
    const ring = new KeyRing(EncryptionKey.fromBase64(TEST_KEY_ENCRYPTION_KEY));
    assert.ok(openTicketKey((await client.get(name))!, s.config.ticketKeyRotateMs, epoch, ring).equals(key), 'the key the router was using');
    assert.ok(tlsServer.getTicketKeys().equals(key), 'the running router kept its key');
    const later = await startRouter(s.config, pino({ level: 'silent' }), { accessLog: () => undefined, port: 0, httpsPort: 0 });
    try {
      await eventually(async () => later.ticketKeys.status().shared, 10_000, 20);
      const session = await tlsHandshake(s.router.httpsPort, { wantSession: true });
      assert.equal((await tlsHandshake(later.httpsPort, { session: session.session })).reused, true);
    } finally {
      await later.close();
    }
  } finally {
    client.disconnect();
  }
});
