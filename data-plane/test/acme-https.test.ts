/**
 * The router's own answers before proxying: ACME HTTP-01 challenges (for any Host, before
 * routing, through a cache that spares Redis) and force_https redirects. Redis is a
 * counting stub here; e2e-acme.test.ts runs the same paths against the real stack.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { KeySchema } from '../../proto/keys.js';
import { AcmeResponder } from '../src/acme/acme-responder.js';
import { httpsLocation } from '../src/proxy/https-location.js';
import { hostRecord, metricValue, rawExchange, request, sleep, startRouter, startUpstream, type Harness, type Upstream } from './proxy-harness.test.js';

const keys = new KeySchema('t:');
const TOKEN = 'tok_EN-1';
const KEY_AUTHORIZATION = `${TOKEN}.${'x'.repeat(43)}`;

/** Redis as the responder sees it: one `GET` per call, counted. */
class CountingRedis {
  readonly values = new Map<string, string>();
  gets: string[] = [];
  down = false;
  delayMs = 0;
  async get(key: string): Promise<string | null> {
    this.gets.push(key);
    if (this.delayMs > 0) await sleep(this.delayMs);
    if (this.down) throw new Error('connection refused');
    return this.values.get(key) ?? null;
  }
}

let up: Upstream;
let redis: CountingRedis;
let h: Harness;
let tls: Harness;
let standardPort: Harness;

before(async () => {
  up = await startUpstream('c1');
  redis = new CountingRedis();
  redis.values.set(keys.acmeChallenge(TOKEN), KEY_AUTHORIZATION);
  h = await startRouter({}, { acme: new AcmeResponder({ redis, keys, ttlMs: 300, max: 5 }) });
  tls = await startRouter({}, { forwardedProto: 'https' });
  standardPort = await startRouter({ ROUTER_HTTPS_PORT: '443' });
  for (const r of [h, tls, standardPort]) {
    r.routes.set('secure.localhost', hostRecord('secure', [up.container], { force_https: true }));
    r.routes.set('plain.localhost', hostRecord('plain', [up.container]));
  }
});
after(async () => {
  await Promise.all([h.close(), tls.close(), standardPort.close()]);
  await up.close();
});

const path = (token: string): string => `/.well-known/acme-challenge/${token}`;

test('a pending challenge is answered for any Host, before routing, with the key authorization', async () => {
  const lookups = h.routes.lookups;
  const hits = up.hits;
  for (const host of ['plain.localhost', 'nobody.example.com', 'secure.localhost', 'not a host!']) {
    const res = await request(h.port, host, { path: path(TOKEN) });
    assert.equal(res.status, 200, host);
    assert.equal(res.body, KEY_AUTHORIZATION, host);
    assert.match(res.headers['content-type'] ?? '', /^text\/plain/);
    assert.equal(res.headers['content-length'], String(KEY_AUTHORIZATION.length));
    assert.ok(res.headers['x-request-id']);
    assert.equal(res.headers['location'], undefined, 'force_https does not apply');
  }
  const noHost = await rawExchange(h.port, `GET ${path(TOKEN)}?probe=1 HTTP/1.0\r\n\r\n`);
  assert.match(noHost, /^HTTP\/1\.1 200 /);
  assert.ok(noHost.endsWith(KEY_AUTHORIZATION), noHost);
  const head = await request(h.port, 'plain.localhost', { path: path(TOKEN), method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
  assert.equal(head.headers['content-length'], String(KEY_AUTHORIZATION.length));

  assert.equal(h.routes.lookups, lookups, 'routing was never consulted');
  assert.equal(up.hits, hits, 'no app saw a challenge');
  const lines = h.lines.filter((l) => l.path.startsWith(path(TOKEN)));
  assert.equal(lines.length, 6);
  assert.deepEqual(new Set(lines.map((l) => `${l.code} ${l.app} ${l.status}`)), new Set(['- - 200']));
  assert.deepEqual(lines.map((l) => l.host), ['plain.localhost', 'nobody.example.com', 'secure.localhost', 'not a host!', '-', 'plain.localhost']);
  assert.equal(lines[0]!.bytes_out, KEY_AUTHORIZATION.length);
  assert.equal(await metricValue(h.metrics, 'router_requests_total', { app: '-', code: '-', class: '2xx' }), 6);
});

test('unknown and invalid tokens answer 404 ACME_UNKNOWN_TOKEN; invalid ones never reach Redis', async () => {
  await sleep(350); // let earlier answers expire
  redis.gets = [];
  const unknown = await request(h.port, 'plain.localhost', { path: path('never-published'), headers: { accept: 'application/json' } });
  assert.equal(unknown.status, 404);
  assert.equal(JSON.parse(unknown.body).code, 'ACME_UNKNOWN_TOKEN');
  assert.deepEqual(redis.gets, [keys.acmeChallenge('never-published')]);

  redis.gets = [];
  for (const bad of ['', 'a.b', '%41', 'x'.repeat(257), '..%2F..%2Fetc', 'a/b', 'tok en']) {
    const res = await rawExchange(h.port, `GET ${path(bad).replace(' ', '%20')} HTTP/1.1\r\nHost: plain.localhost\r\nConnection: close\r\n\r\n`);
    assert.match(res, /^HTTP\/1\.1 404 /, bad);
    assert.match(res, /ACME_UNKNOWN_TOKEN/, bad);
  }
  assert.deepEqual(redis.gets, [], 'Redis untouched');
  const line = h.lines.at(-1)!;
  assert.equal(line.code, 'ACME_UNKNOWN_TOKEN');
  assert.equal(line.app, '-');
  assert.equal(line.status, 404);
});

test('a flood of one token costs one GET per TTL; concurrent requests share it; the cache is bounded', async () => {
  redis.gets = [];
  redis.delayMs = 30;
  const flood = await Promise.all(Array.from({ length: 20 }, () => request(h.port, 'x.localhost', { path: path('flood-token') })));
  assert.ok(flood.every((r) => r.status === 404));
  for (let i = 0; i < 20; i++) assert.equal((await request(h.port, 'x.localhost', { path: path('flood-token') })).status, 404);
  assert.equal(redis.gets.length, 1, 'one GET for 40 requests');
  await sleep(350);
  assert.equal((await request(h.port, 'x.localhost', { path: path('flood-token') })).status, 404);
  assert.equal(redis.gets.length, 2, 're-read once the answer expired');

  // Publishing becomes visible once the negative answer expires.
  redis.values.set(keys.acmeChallenge('flood-token'), `flood-token.${'y'.repeat(43)}`);
  await sleep(350);
  assert.equal((await request(h.port, 'x.localhost', { path: path('flood-token') })).body, `flood-token.${'y'.repeat(43)}`);

  // max 5: after 6 other tokens, the first is read again.
  redis.delayMs = 0;
  redis.gets = [];
  for (let i = 0; i < 6; i++) await request(h.port, 'x.localhost', { path: path(`evict-${i}`) });
  await request(h.port, 'x.localhost', { path: path('flood-token') });
  assert.equal(redis.gets.length, 7);
});

test('Redis down: 503 STORE_UNAVAILABLE, not remembered', async () => {
  await sleep(350);
  redis.down = true;
  const res = await request(h.port, 'x.localhost', { path: path(TOKEN) });
  assert.equal(res.status, 503);
  assert.match(res.body, /STORE_UNAVAILABLE/);
  redis.down = false;
  assert.equal((await request(h.port, 'x.localhost', { path: path(TOKEN) })).body, KEY_AUTHORIZATION);
});

test('other methods on the challenge path are routed to the app', async () => {
  const hits = up.hits;
  const res = await request(h.port, 'plain.localhost', { path: path(TOKEN), method: 'POST', body: 'x' });
  assert.equal(res.status, 200);
  assert.equal(res.body, `c1 POST ${path(TOKEN)}`);
  assert.equal(up.hits, hits + 1);
});

test('force_https: plain HTTP gets 308 to the same URL over https on ROUTER_HTTPS_PORT', async () => {
  const hits = up.hits;
  const res = await request(h.port, 'Secure.localhost:8080', { path: '/a/b?c=1&d' });
  assert.equal(res.status, 308);
  assert.equal(res.headers['location'], 'https://secure.localhost:8443/a/b?c=1&d');
  assert.equal(res.headers['cache-control'], 'no-store');
  const line = h.lines.at(-1)!;
  assert.equal(line.code, 'FORCE_HTTPS');
  assert.equal(line.app, 'secure');
  assert.equal(line.status, 308);

  const standard = await request(standardPort.port, 'secure.localhost', { path: '/' });
  assert.equal(standard.status, 308);
  assert.equal(standard.headers['location'], 'https://secure.localhost/', 'no port for 443');

  const absolute = await rawExchange(h.port, 'GET http://secure.localhost/abs?q HTTP/1.1\r\nHost: secure.localhost\r\nConnection: close\r\n\r\n');
  assert.match(absolute, /^HTTP\/1\.1 308 /);
  assert.match(absolute, /\r\nlocation: https:\/\/secure\.localhost:8443\/abs\?q\r\n/i);

  assert.equal(up.hits, hits, 'the app saw none of them');
  assert.equal((await request(h.port, 'plain.localhost', { path: '/p' })).status, 200, 'apps without force_https are proxied');
  const overTls = await request(tls.port, 'secure.localhost', { path: '/p' });
  assert.equal(overTls.status, 200, 'a listener that is already https does not redirect');
  assert.equal(overTls.body, 'c1 GET /p');
  assert.equal(await metricValue(h.metrics, 'router_requests_total', { app: 'secure', code: 'FORCE_HTTPS', class: '3xx' }), 2);
});

test('force_https: a WebSocket upgrade over plain HTTP gets the 308 too, and never reaches the app', async () => {
  const hits = up.hits;
  const timed = async (): Promise<number> => {
    const data = await h.metrics.registry.getSingleMetric('router_request_duration_seconds')!.get();
    const count = data.values.find((v) => (v as { metricName?: string }).metricName === 'router_request_duration_seconds_count' && v.labels['class'] === '3xx');
    return count?.value ?? 0;
  };
  const timedBefore = await timed();
  const upgrade = (host: string): Promise<string> =>
    rawExchange(h.port, `GET /socket?room=1 HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  const answer = await upgrade('secure.localhost');
  assert.match(answer, /^HTTP\/1\.1 308 /);
  assert.match(answer, /\r\nlocation: https:\/\/secure\.localhost:8443\/socket\?room=1\r\n/);
  assert.match(answer, /\r\nconnection: close\r\n/);
  const line = h.lines.at(-1)!;
  assert.equal(line.code, 'FORCE_HTTPS');
  assert.equal(line.app, 'secure');
  assert.equal(up.hits, hits, 'the app saw no upgrade');
  assert.equal(await timed(), timedBefore + 1, 'in the latency histogram like the HTTP redirect');
  assert.equal(await metricValue(h.metrics, 'router_requests_total', { app: 'secure', code: 'FORCE_HTTPS', class: '3xx' }), 3, 'counted with the two HTTP redirects of the test above');
  assert.doesNotMatch(await upgrade('plain.localhost'), /^HTTP\/1\.1 308 /, 'apps without force_https get their WebSocket');
});

test('httpsLocation keeps the path and query, and drops absolute-form authorities', () => {
  assert.equal(httpsLocation('a.example.com', '/x?y=1', 8443), 'https://a.example.com:8443/x?y=1');
  assert.equal(httpsLocation('a.example.com', '/', 443), 'https://a.example.com/');
  assert.equal(httpsLocation('a.example.com', 'http://evil.example.net/p?q', 443), 'https://a.example.com/p?q');
  assert.equal(httpsLocation('a.example.com', '//evil.example.net/p', 443), 'https://a.example.com//evil.example.net/p');
  assert.equal(httpsLocation('a.example.com', '*', 443), 'https://a.example.com/');
});
