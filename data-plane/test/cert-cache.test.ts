import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { pino } from 'pino';
import { RouterMetrics } from '../src/metrics.js';
import { CertCache } from '../src/tls/cert-cache.js';
import type { CertSource, LoadedCert } from '../src/tls/cert-store.js';
import { generateSelfSigned } from '../src/tls/self-signed.js';

const pem = generateSelfSigned('unit');
const context = createSecureContext(pem);
const certFor = (domain: string): LoadedCert => ({ domain, context, notAfterMs: Date.now() + 10 * 86_400_000, fingerprint256: domain });

/** A source whose answers the test releases by hand. */
function manualSource(): CertSource & { calls: string[]; release(name: string, domain: string | null): void } {
  const pending = new Map<string, (v: LoadedCert | null) => void>();
  return {
    calls: [],
    find(name) {
      this.calls.push(name);
      return new Promise((resolve) => pending.set(name, resolve));
    },
    release(name, domain) {
      pending.get(name)!(domain === null ? null : certFor(domain));
      pending.delete(name);
    },
  };
}

function newCache(source: CertSource): CertCache {
  return new CertCache({ source, max: 10, negativeTtlMs: 60_000, metrics: new RouterMetrics(10), log: pino({ level: 'silent' }) });
}

test('the generated default certificate parses and names its CN', () => {
  const cert = new X509Certificate(pem.cert);
  assert.match(cert.subject, /CN=unit/);
  assert.ok(cert.checkPrivateKey(createPrivateKey(pem.key)));
  assert.ok(cert.verify(cert.publicKey), 'self-signature valid');
});

test('concurrent loads of one cold name make one lookup, and the answer is cached', async () => {
  const source = manualSource();
  const cache = newCache(source);
  assert.equal(cache.get('a.x.test'), undefined);
  const loads = [cache.load('a.x.test'), cache.load('a.x.test'), cache.load('a.x.test')];
  source.release('a.x.test', 'a.x.test');
  const answers = await Promise.all(loads);
  assert.equal(source.calls.length, 1);
  assert.ok(answers.every((a) => a?.domain === 'a.x.test'));
  assert.equal(cache.get('a.x.test')?.domain, 'a.x.test');
  // Unknown names are remembered as unknown.
  const miss = cache.load('b.x.test');
  source.release('b.x.test', null);
  assert.equal(await miss, null);
  assert.equal(cache.get('b.x.test'), null);
});

test('a lookup overtaken by an invalidation of its name, its wildcard or a flush is answered but not stored', async () => {
  for (const overtake of [(c: CertCache) => c.invalidate(['a.x.test']), (c: CertCache) => c.invalidate(['*.x.test']), (c: CertCache) => c.flush()]) {
    const source = manualSource();
    const cache = newCache(source);
    const load = cache.load('a.x.test');
    overtake(cache);
    source.release('a.x.test', 'a.x.test');
    assert.equal((await load)?.domain, 'a.x.test', 'the waiting handshake still gets the answer');
    assert.equal(cache.get('a.x.test'), undefined, 'not stored');
    const again = cache.load('a.x.test');
    assert.equal(source.calls.length, 2, 'the next handshake reads again');
    source.release('a.x.test', 'a.x.test');
    await again;
  }
});

test('invalidating a wildcard drops every name cached through it, and the unknown names', async () => {
  const source = manualSource();
  const cache = newCache(source);
  for (const name of ['a.x.test', 'b.x.test']) {
    const load = cache.load(name);
    source.release(name, '*.x.test');
    await load;
  }
  const unknown = cache.load('c.y.test');
  source.release('c.y.test', null);
  await unknown;
  const other = cache.load('d.z.test');
  source.release('d.z.test', 'd.z.test');
  await other;
  cache.invalidate(['*.x.test']);
  assert.equal(cache.get('a.x.test'), undefined);
  assert.equal(cache.get('b.x.test'), undefined);
  assert.equal(cache.get('c.y.test'), undefined, 'negative entries cleared by a wildcard change');
  assert.equal(cache.get('d.z.test')?.domain, 'd.z.test', 'other certificates kept');
});

test('days until expiry are computed at each scrape, not frozen at load', async () => {
  // An hour in: the certificate (valid 10 days from its load) has 9 whole days left.
  let now = Date.now() + 3_600_000;
  const source = manualSource();
  const metrics = new RouterMetrics(10);
  const cache = new CertCache({ source, max: 10, negativeTtlMs: 60_000, metrics, log: pino({ level: 'silent' }), clock: () => now });
  const load = cache.load('days.x.test');
  source.release('days.x.test', 'days.x.test');
  await load;
  const days = async (): Promise<number> => Number(/router_cert_expiry_days\{domain="days\.x\.test"\} (-?\d+)/.exec(await metrics.registry.metrics())?.[1]);
  assert.equal(await days(), 9);
  now += 3 * 86_400_000;
  assert.equal(await days(), 6, 'three days later');
  cache.invalidate(['days.x.test']);
  assert.ok(Number.isNaN(await days()), 'gone with its last cached name');
});
