import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeCertRecord, decodeHostRecord } from '../../proto/records.js';
import { selfSigned } from '../../test-support/certs.js';
import { EncryptionKey, KeyRing, decryptPrivateKey } from '../../proto/key-envelope.js';
import { TEST_KEY_ENCRYPTION_KEY, startHarness, type Harness } from '../../test-support/control-plane.js';

const c1 = { id: 'web-1', host: '10.0.3.7', port: 31000 };
const c2 = { id: 'web-2', host: '10.0.3.8', port: 31001 };
const c3 = { id: 'web-3', host: 'node-3.internal', port: 31002 };

const testRing = new KeyRing(EncryptionKey.fromBase64(TEST_KEY_ENCRYPTION_KEY));
let h: Harness;
before(async () => {
  h = await startHarness('events');
});
after(async () => {
  await h.close();
});

async function hostRecord(hostname: string) {
  const raw = await h.redis.get(h.keys.host(hostname));
  return raw === null ? null : decodeHostRecord(raw);
}

describe('event types', () => {
  test('deploy creates the app and its default hostname record', async () => {
    const res = await h.deploy('alpha', [c1]);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.applied, true);
    assert.equal(typeof res.body.version, 'number');
    const rec = await hostRecord('alpha.localhost');
    assert.ok(rec);
    assert.equal(rec.app, 'alpha');
    assert.equal(rec.status, 'running');
    assert.deepEqual(rec.containers, [c1]);
    assert.equal(rec.version, res.body.version);
    const app = await h.get('/v1/apps/alpha');
    assert.equal(app.status, 200);
    assert.deepEqual(app.body.containers, [c1]);
    assert.deepEqual(app.body.hostnames, ['alpha.localhost']);
    assert.equal(app.body.status, 'running');
  });

  test('scale replaces the container set; restart too', async () => {
    await h.deploy('beta', [c1]);
    const scaled = await h.send({ app: 'beta', type: 'scale', containers: [c1, c2, c3] });
    assert.equal(scaled.status, 200);
    assert.deepEqual((await hostRecord('beta.localhost'))?.containers, [c1, c2, c3]);
    const restarted = await h.send({ app: 'beta', type: 'restart', containers: [c2] });
    assert.equal(restarted.status, 200);
    assert.deepEqual((await hostRecord('beta.localhost'))?.containers, [c2]);
  });

  test('stop keeps the hostnames with no containers; a later deploy runs again', async () => {
    await h.deploy('gamma', [c1]);
    const stopped = await h.send({ app: 'gamma', type: 'stop' });
    assert.equal(stopped.status, 200);
    const rec = await hostRecord('gamma.localhost');
    assert.equal(rec?.status, 'stopped');
    assert.deepEqual(rec?.containers, []);
    const route = await h.get('/v1/routes/gamma.localhost');
    assert.equal(route.status, 200);
    assert.equal(route.body.status, 'stopped');
    await h.deploy('gamma', [c2]);
    assert.equal((await hostRecord('gamma.localhost'))?.status, 'running');
  });

  test('domains: set, replace, and the removed ones disappear', async () => {
    await h.deploy('delta', [c1]);
    let res = await h.send({ app: 'delta', type: 'domains', domains: ['www.delta.test', 'API.Delta.Test.', '*.delta.org'] });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal((await hostRecord('www.delta.test'))?.app, 'delta');
    assert.equal((await hostRecord('api.delta.test'))?.app, 'delta', 'domains are normalized');
    assert.equal((await hostRecord('*.delta.org'))?.app, 'delta');
    res = await h.send({ app: 'delta', type: 'domains', domains: ['www.delta.test'] });
    assert.equal(res.status, 200);
    assert.equal(await hostRecord('api.delta.test'), null);
    assert.equal(await hostRecord('*.delta.org'), null);
    const app = await h.get('/v1/apps/delta');
    assert.deepEqual(app.body.domains, ['www.delta.test']);
    assert.deepEqual(app.body.hostnames, ['delta.localhost', 'www.delta.test']);
  });

  test('wildcard domains resolve one label deep only', async () => {
    await h.deploy('wild', [c1]);
    await h.send({ app: 'wild', type: 'domains', domains: ['*.wild.test'] });
    const hit = await h.get('/v1/routes/shop.wild.test');
    assert.equal(hit.status, 200);
    assert.equal(hit.body.app, 'wild');
    assert.equal(hit.body.matched, '*.wild.test');
    const deep = await h.get('/v1/routes/a.b.wild.test');
    assert.equal(deep.status, 404);
    assert.equal(deep.body.code, 'ROUTE_NOT_FOUND');
  });

  test('settings patch keeps absent keys', async () => {
    await h.deploy('eps', [c1], { settings: { force_https: true } });
    await h.send({ app: 'eps', type: 'scale', containers: [c1, c2], settings: { sticky_sessions: true } });
    const rec = await hostRecord('eps.localhost');
    assert.equal(rec?.settings.force_https, true);
    assert.equal(rec?.settings.sticky_sessions, true);
    assert.equal(rec?.settings.balancer, 'p2c');
  });

  test('delete removes the app, its hostnames and certificates; routes answer 404', async () => {
    await h.deploy('zeta', [c1]);
    await h.send({ app: 'zeta', type: 'domains', domains: ['www.zeta.test'] });
    const cert = await selfSigned({ sans: ['www.zeta.test'] });
    const certRes = await h.send({ app: 'zeta', type: 'certificate', certificate: { domain: 'www.zeta.test', cert: cert.chainPem, key: cert.keyPem } });
    assert.equal(certRes.status, 200, JSON.stringify(certRes.body));
    const res = await h.send({ app: 'zeta', type: 'delete' });
    assert.equal(res.status, 200);
    assert.equal(await hostRecord('zeta.localhost'), null);
    assert.equal(await hostRecord('www.zeta.test'), null);
    assert.equal(await h.redis.get(h.keys.cert('www.zeta.test')), null);
    assert.equal((await h.get('/v1/apps/zeta')).body.code, 'APP_NOT_FOUND');
    assert.equal((await h.get('/v1/routes/zeta.localhost')).status, 404);
    const list = await h.get('/v1/apps?limit=1000');
    assert.ok(!list.body.apps.some((a: { app: string }) => a.app === 'zeta'));
  });

  test('a deleted app keeps its seq: an older event cannot resurrect it', async () => {
    await h.post('/v1/events', { id: 'resurrect-1', app: 'eta', seq: 10, type: 'deploy', containers: [c1] });
    await h.post('/v1/events', { id: 'resurrect-2', app: 'eta', seq: 12, type: 'delete' });
    const late = await h.post('/v1/events', { id: 'resurrect-3', app: 'eta', seq: 11, type: 'scale', containers: [c1, c2] });
    assert.equal(late.status, 409);
    assert.equal(late.body.code, 'STALE_EVENT');
    assert.equal(await hostRecord('eta.localhost'), null);
    const again = await h.post('/v1/events', { id: 'resurrect-4', app: 'eta', seq: 13, type: 'deploy', containers: [c2] });
    assert.equal(again.status, 200);
    assert.deepEqual((await hostRecord('eta.localhost'))?.containers, [c2]);
  });
});

describe('idempotency and ordering', () => {
  test('a repeated id returns the first answer and changes nothing', async () => {
    const event = { id: 'idem-1', app: 'theta', seq: 5, type: 'deploy', containers: [c1] };
    const first = await h.post('/v1/events', event);
    assert.equal(first.status, 200);
    const versionBefore = Number(await h.redis.get(h.keys.versionKey));
    const again = await h.post('/v1/events', event);
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, { ...first.body, duplicate: true });
    assert.equal(Number(await h.redis.get(h.keys.versionKey)), versionBefore);
  });

  test('the same id for a different event is refused', async () => {
    await h.post('/v1/events', { id: 'idem-2', app: 'iota', seq: 1, type: 'deploy', containers: [c1] });
    const res = await h.post('/v1/events', { id: 'idem-2', app: 'iota', seq: 2, type: 'deploy', containers: [c2] });
    assert.equal(res.status, 409);
    assert.equal(res.body.code, 'IDEMPOTENCY_KEY_REUSED');
    assert.deepEqual((await hostRecord('iota.localhost'))?.containers, [c1]);
  });

  test('an event whose seq is not greater is stale and writes nothing', async () => {
    await h.post('/v1/events', { id: 'st-1', app: 'kappa', seq: 7, type: 'deploy', containers: [c1, c2] });
    const before = await h.redis.get(h.keys.host('kappa.localhost'));
    for (const seq of [7, 6, 1]) {
      const res = await h.post('/v1/events', { id: `st-old-${seq}`, app: 'kappa', seq, type: 'scale', containers: [c3] });
      assert.equal(res.status, 409);
      assert.equal(res.body.code, 'STALE_EVENT');
      assert.equal(res.body.field, 'seq');
    }
    assert.equal(await h.redis.get(h.keys.host('kappa.localhost')), before);
  });

  test('1000 events for one app delivered shuffled and concurrently end at the highest seq', async () => {
    const n = 1000;
    const events = Array.from({ length: n }, (_, i) => ({
      id: `shuffle-${i + 1}`,
      app: 'lambda',
      seq: i + 1,
      type: 'scale',
      containers: [{ id: `web-${i + 1}`, host: '10.1.0.1', port: 20000 + i }],
    }));
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [events[i], events[j]] = [events[j]!, events[i]!];
    }
    const replies = await Promise.all(events.map((e) => h.post('/v1/events', e)));
    for (const r of replies) assert.ok(r.status === 200 || (r.status === 409 && r.body.code === 'STALE_EVENT'), JSON.stringify(r.body));
    assert.ok(replies.some((r) => r.status === 200));
    const rec = await hostRecord('lambda.localhost');
    assert.deepEqual(rec?.containers, [{ id: `web-${n}`, host: '10.1.0.1', port: 20000 + n - 1 }]);
    assert.equal((await h.get('/v1/apps/lambda')).body.seq, n);
  });
});

describe('domain conflicts', () => {
  test('a domain owned by another app is refused and nothing is written', async () => {
    await h.deploy('mu', [c1]);
    await h.deploy('nu', [c2]);
    assert.equal((await h.send({ app: 'mu', type: 'domains', domains: ['shared.example.com'] })).status, 200);
    const res = await h.send({ app: 'nu', type: 'domains', domains: ['free.example.com', 'shared.example.com'] });
    assert.equal(res.status, 409);
    assert.equal(res.body.code, 'DOMAIN_TAKEN');
    assert.equal((await hostRecord('shared.example.com'))?.app, 'mu');
    assert.equal(await hostRecord('free.example.com'), null, 'no partial write');
    assert.deepEqual((await h.get('/v1/apps/nu')).body.domains, []);
  });

  test('another app\'s default hostname, or anything under the platform domain, is refused', async () => {
    await h.deploy('xi', [c1]);
    for (const domain of ['omicron.localhost', 'xi.localhost', '*.apps.localhost', 'deep.omicron.localhost']) {
      const res = await h.send({ app: 'xi', type: 'domains', domains: [domain] });
      assert.equal(res.status, 409, domain);
      assert.equal(res.body.code, 'DOMAIN_TAKEN');
    }
  });

  test('two apps racing for one domain: exactly one wins', async () => {
    await h.deploy('race-a', [c1]);
    await h.deploy('race-b', [c2]);
    const [a, b] = await Promise.all([
      h.send({ app: 'race-a', type: 'domains', domains: ['contested.example.com'] }),
      h.send({ app: 'race-b', type: 'domains', domains: ['contested.example.com'] }),
    ]);
    assert.deepEqual([a.status, b.status].sort(), [200, 409]);
    const winner = a.status === 200 ? 'race-a' : 'race-b';
    assert.equal((await hostRecord('contested.example.com'))?.app, winner);
  });
});

describe('certificates', () => {
  test('set, list with expiry, never expose the key, remove', async () => {
    await h.deploy('pi', [c1]);
    await h.send({ app: 'pi', type: 'domains', domains: ['www.pi.test', '*.pi.test'] });
    const ec = await selfSigned({ sans: ['www.pi.test'], keyType: 'ec' });
    const wild = await selfSigned({ sans: ['*.pi.test'], keyType: 'rsa' });
    assert.equal((await h.send({ app: 'pi', type: 'certificate', certificate: { domain: 'www.pi.test', cert: ec.chainPem, key: ec.keyPem } })).status, 200);
    const res = await h.send({ app: 'pi', type: 'certificate', certificate: { domain: '*.pi.test', cert: wild.chainPem, key: wild.keyPem } });
    assert.equal(res.status, 200, JSON.stringify(res.body));

    const stored = decodeCertRecord((await h.redis.get(h.keys.cert('www.pi.test')))!);
    assert.equal(stored.app, 'pi');
    assert.equal(stored.key_type, 'ec');
    // Sealed at rest with the harness's key, bound to its domain (proto/test/key-envelope.test.ts covers the crypto).
    assert.equal(stored.key.alg, 'A256GCM');
    assert.equal(decryptPrivateKey(stored.key, 'www.pi.test', testRing), ec.keyPem);

    const app = await h.get('/v1/apps/pi');
    assert.deepEqual(app.body.certificates.map((c: { domain: string }) => c.domain).sort(), ['*.pi.test', 'www.pi.test']);
    assert.ok(app.body.certificates.every((c: { expires_in_days: number }) => c.expires_in_days >= 88));
    assert.ok(!JSON.stringify(app.body).includes('PRIVATE KEY'));

    const route = await h.get('/v1/routes/shop.pi.test');
    assert.deepEqual(route.body.certificate, { domain: '*.pi.test' });
    assert.ok(!JSON.stringify(route.body).includes('PRIVATE KEY'));

    const removed = await h.send({ app: 'pi', type: 'certificate', certificate: { domain: 'www.pi.test', remove: true } });
    assert.equal(removed.status, 200);
    assert.equal(await h.redis.get(h.keys.cert('www.pi.test')), null);
  });

  test('a certificate for a domain the app does not have is refused', async () => {
    await h.deploy('rho', [c1]);
    const cert = await selfSigned({ sans: ['www.rho.test'] });
    const res = await h.send({ app: 'rho', type: 'certificate', certificate: { domain: 'www.rho.test', cert: cert.certPem, key: cert.keyPem } });
    assert.equal(res.status, 409);
    assert.equal(res.body.code, 'DOMAIN_NOT_ATTACHED');
  });

  test('invalid certificates answer 400 INVALID_CERTIFICATE with the reason, never the key', async () => {
    await h.deploy('sigma', [c1]);
    await h.send({ app: 'sigma', type: 'domains', domains: ['www.sigma.test'] });
    const good = await selfSigned({ sans: ['www.sigma.test'] });
    const other = await selfSigned({ sans: ['www.sigma.test'] });
    const wrong = await selfSigned({ sans: ['www.elsewhere.test'] });
    const expired = await selfSigned({ sans: ['www.sigma.test'], notBefore: new Date(Date.now() - 20 * 86400e3), notAfter: new Date(Date.now() - 86400e3) });
    const cases: Array<[string, { cert: string; key: string }, RegExp]> = [
      ['key mismatch', { cert: good.certPem, key: other.keyPem }, /does not match/],
      ['wrong domain', { cert: wrong.certPem, key: wrong.keyPem }, /does not cover/],
      ['expired', { cert: expired.certPem, key: expired.keyPem }, /expired/],
      ['garbage', { cert: 'not a certificate', key: 'not a key' }, /./],
    ];
    for (const [name, pair, reason] of cases) {
      const res = await h.send({ app: 'sigma', type: 'certificate', certificate: { domain: 'www.sigma.test', ...pair } });
      assert.equal(res.status, 400, name);
      assert.equal(res.body.code, 'INVALID_CERTIFICATE', name);
      assert.match(res.body.message, reason, name);
      const keyBody = pair.key.split('\n')[1] ?? pair.key;
      assert.ok(!JSON.stringify(res.body).includes(keyBody), `${name}: key leaked`);
    }
    assert.equal(await h.redis.get(h.keys.cert('www.sigma.test')), null);
  });

  test('removing a domain removes its certificate', async () => {
    await h.deploy('tau', [c1]);
    await h.send({ app: 'tau', type: 'domains', domains: ['www.tau.test'] });
    const cert = await selfSigned({ sans: ['www.tau.test'] });
    await h.send({ app: 'tau', type: 'certificate', certificate: { domain: 'www.tau.test', cert: cert.certPem, key: cert.keyPem } });
    await h.send({ app: 'tau', type: 'domains', domains: [] });
    assert.equal(await h.redis.get(h.keys.cert('www.tau.test')), null);
    assert.deepEqual((await h.get('/v1/apps/tau')).body.certificates, []);
  });
});

describe('reads', () => {
  test('apps are listed in pages with a cursor', async () => {
    for (const name of ['page-a', 'page-b', 'page-c']) await h.deploy(name, [c1]);
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 100; i++) {
      const page: { status: number; body: { apps: Array<{ app: string }>; next_cursor: string | null } } = await h.get(`/v1/apps?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      assert.equal(page.status, 200);
      assert.ok(page.body.apps.length <= 2);
      seen.push(...page.body.apps.map((a) => a.app));
      cursor = page.body.next_cursor;
      if (cursor === null) break;
    }
    for (const name of ['page-a', 'page-b', 'page-c']) assert.ok(seen.includes(name), name);
    assert.deepEqual(seen, [...seen].sort(), 'name order');
    assert.equal(new Set(seen).size, seen.length, 'no app twice');
  });

  test('bad query parameters are refused', async () => {
    assert.equal((await h.get('/v1/apps?limit=0')).body.code, 'INVALID_FIELD');
    assert.equal((await h.get('/v1/apps?limit=abc')).body.code, 'INVALID_FIELD');
    assert.equal((await h.get('/v1/apps?cursor=../etc')).body.code, 'INVALID_FIELD');
    assert.equal((await h.get('/v1/apps?sort=name')).body.code, 'UNKNOWN_FIELD');
    assert.equal((await h.get('/v1/apps/..%2F..%2Fetc')).body.code, 'INVALID_FIELD');
    assert.equal((await h.get('/v1/routes/bad_host!')).body.code, 'INVALID_FIELD');
  });

  test('health, readiness and metrics need no token', async () => {
    assert.equal((await h.get('/healthz', { auth: 'none' })).status, 200);
    assert.equal((await h.get('/readyz', { auth: 'none' })).status, 200);
    const metrics = await h.get('/metrics', { auth: 'none' });
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /control_plane_events_total\{type="deploy",outcome="applied"\} \d+/);
    assert.match(metrics.body, /control_plane_event_apply_seconds_bucket/);
    assert.match(metrics.body, /process_cpu_user_seconds_total/);
  });
});

describe('invalidation messages', () => {
  test('each applied event publishes one message with its version and exactly the changed names', async () => {
    const sub = await h.subscribe();
    try {
      const d = await h.deploy('upsilon', [c1]);
      const dom = await h.send({ app: 'upsilon', type: 'domains', domains: ['www.upsilon.test', 'api.upsilon.test'] });
      const dom2 = await h.send({ app: 'upsilon', type: 'domains', domains: ['www.upsilon.test'] });
      const stale = await h.post('/v1/events', { id: 'ups-stale', app: 'upsilon', seq: 1, type: 'stop' });
      assert.equal(stale.status, 409);
      const cert = await selfSigned({ sans: ['www.upsilon.test'] });
      const c = await h.send({ app: 'upsilon', type: 'certificate', certificate: { domain: 'www.upsilon.test', cert: cert.certPem, key: cert.keyPem } });
      const del = await h.send({ app: 'upsilon', type: 'delete' });
      const msgs = (await sub.waitFor(5)).filter((m) => m.app === 'upsilon');
      assert.equal(msgs.length, 5, 'the stale event published nothing');
      assert.deepEqual(msgs.map((m) => m.version), [d, dom, dom2, c, del].map((r) => r.body.version));
      assert.deepEqual(msgs[0]!.hosts, ['upsilon.localhost']);
      assert.deepEqual(msgs[1]!.hosts.sort(), ['api.upsilon.test', 'www.upsilon.test'], 'unchanged default hostname not named');
      assert.deepEqual(msgs[2]!.hosts, ['api.upsilon.test']);
      assert.deepEqual(msgs[3]!.hosts, []);
      assert.deepEqual(msgs[3]!.certs, ['www.upsilon.test']);
      assert.deepEqual(msgs[4]!.hosts.sort(), ['upsilon.localhost', 'www.upsilon.test']);
      assert.deepEqual(msgs[4]!.certs, ['www.upsilon.test']);
    } finally {
      await sub.close();
    }
  });

  test('versions published are consecutive across apps', async () => {
    const sub = await h.subscribe();
    try {
      await Promise.all(['v-a', 'v-b', 'v-c', 'v-d'].map((app) => h.deploy(app, [c1])));
      const msgs = await sub.waitFor(4);
      const versions = msgs.map((m) => m.version);
      for (let i = 1; i < versions.length; i++) assert.equal(versions[i], versions[i - 1]! + 1);
    } finally {
      await sub.close();
    }
  });
});
