import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { hostRecord, metricValue, refusedPort, request, startRouter, startUpstream, until, type Harness, type Upstream } from './proxy-harness.test.js';

let h: Harness;
const ups: Upstream[] = [];
/** Requests to /hold wait here until released. */
const held: http.ServerResponse[] = [];

function release(): void {
  for (const res of held.splice(0)) res.end('released');
}

before(async () => {
  for (const id of ['c1', 'c2', 'c3']) {
    ups.push(
      await startUpstream(id, (req, res) => {
        if (req.url === '/hold') {
          held.push(res);
          return;
        }
        res.end(`${id} ${req.url}`);
      }),
    );
  }
  h = await startRouter({ ROUTER_MAX_INFLIGHT_PER_APP: '3' });
});
after(async () => {
  release();
  await h.close();
  await Promise.all(ups.map((u) => u.close()));
});

const container = (i: number) => ups[i]!.container;

/** Starts a request and resolves with its status once it ends (it may be held). */
function start(host: string, path: string, headers: http.OutgoingHttpHeaders = {}): Promise<number> {
  return request(h.port, host, { path, headers }).then((r) => r.status);
}

test('per-app backlog: past maxInflightPerApp → 503 BACKLOG_TOO_DEEP; other apps unaffected', async () => {
  h.routes.set('flood.localhost', hostRecord('flood', [container(0)]));
  h.routes.set('calm.localhost', hostRecord('calm', [container(1)]));
  const holds = [start('flood.localhost', '/hold'), start('flood.localhost', '/hold'), start('flood.localhost', '/hold')];
  assert.ok(await until(() => held.length === 3));
  assert.equal(h.router.stats().inflight, 3);

  const over = await request(h.port, 'flood.localhost', { headers: { accept: 'application/json' } });
  assert.equal(over.status, 503);
  assert.equal(JSON.parse(over.body).code, 'BACKLOG_TOO_DEEP');
  assert.equal(ups[0]!.hits, 3, 'the rejected request never reached the container');
  assert.equal((await request(h.port, 'calm.localhost')).status, 200, 'another app still answers');
  assert.equal(await metricValue(h.metrics, 'router_inflight_requests', { app: 'flood' }), 3);

  release();
  assert.deepEqual(await Promise.all(holds), [200, 200, 200]);
  assert.equal((await request(h.port, 'flood.localhost')).status, 200, 'room again once they finished');
  assert.equal(h.lines.filter((l) => l.code === 'BACKLOG_TOO_DEEP').length, 1);
});

test('round robin cycles through the containers in order', async () => {
  h.routes.set('rr.localhost', hostRecord('rr', [container(0), container(1), container(2)], { balancer: 'round_robin' }));
  const order: string[] = [];
  for (let i = 0; i < 30; i++) order.push((await request(h.port, 'rr.localhost')).body.split(' ')[0]!);
  const counts = Object.fromEntries(['c1', 'c2', 'c3'].map((id) => [id, order.filter((o) => o === id).length]));
  assert.deepEqual(counts, { c1: 10, c2: 10, c3: 10 });
  for (let i = 3; i < order.length; i++) assert.equal(order[i], order[i - 3], 'a fixed cycle');
});

test('p2c sends new requests to the container with fewer in flight', async () => {
  // The sticky cookie pins 3 held requests on c1; requests without it go through p2c.
  h.routes.set('p2c.localhost', hostRecord('p2c', [container(0), container(1)], { sticky_sessions: true }));
  const holds = [0, 1].map(() => start('p2c.localhost', '/hold', { cookie: 'rt_sticky=c1' }));
  assert.ok(await until(() => held.length === 2));
  const seen = new Set<string>();
  for (let i = 0; i < 20; i++) seen.add((await request(h.port, 'p2c.localhost')).body.split(' ')[0]!);
  assert.deepEqual([...seen], ['c2']);
  release();
  await Promise.all(holds);
  // Idle again: both get traffic.
  for (let i = 0; i < 40; i++) seen.add((await request(h.port, 'p2c.localhost')).body.split(' ')[0]!);
  assert.deepEqual([...seen].sort(), ['c1', 'c2']);
});

test('sticky sessions: the cookie names the container, is set when missing or stale, ignored when the container is gone', async () => {
  h.routes.set('sticky.localhost', hostRecord('sticky', [container(0), container(1), container(2)], { sticky_sessions: true }));
  const first = await request(h.port, 'sticky.localhost');
  const cookie = first.headers['set-cookie']?.[0] ?? '';
  const m = /^rt_sticky=(c[123]); Path=\/; HttpOnly; SameSite=Lax$/.exec(cookie);
  assert.ok(m, `cookie: ${cookie}`);
  const pinned = m[1]!;
  assert.equal(first.body.split(' ')[0], pinned);
  for (let i = 0; i < 10; i++) {
    const res = await request(h.port, 'sticky.localhost', { headers: { cookie: `theme=dark; rt_sticky=${pinned}; other=1` } });
    assert.equal(res.body.split(' ')[0], pinned);
    assert.equal(res.headers['set-cookie'], undefined, 'no new cookie while it holds');
  }
  // The pinned container scaled away: the cookie is ignored and replaced.
  const rest = [container(0), container(1), container(2)].filter((c) => c.id !== pinned);
  h.routes.set('sticky.localhost', hostRecord('sticky', rest, { sticky_sessions: true }));
  const moved = await request(h.port, 'sticky.localhost', { headers: { cookie: `rt_sticky=${pinned}` } });
  assert.notEqual(moved.body.split(' ')[0], pinned);
  assert.match(moved.headers['set-cookie']?.[0] ?? '', new RegExp(`^rt_sticky=${moved.body.split(' ')[0]};`));
  // Without sticky sessions no cookie is ever set.
  h.routes.set('plain.localhost', hostRecord('plain', [container(0)]));
  assert.equal((await request(h.port, 'plain.localhost')).headers['set-cookie'], undefined);
});

test('sticky cookie naming an ejected container is ignored', async () => {
  const dead = { id: 'dead', host: '127.0.0.1', port: await refusedPort() };
  h.routes.set('stickydead.localhost', hostRecord('stickydead', [dead, container(1)], { sticky_sessions: true }));
  const errors = await metricValue(h.metrics, 'router_upstream_errors_total', { code: 'UPSTREAM_REFUSED' });
  const first = await request(h.port, 'stickydead.localhost', { headers: { cookie: 'rt_sticky=dead' } });
  assert.equal(first.status, 200);
  assert.equal(first.body.split(' ')[0], 'c2');
  assert.match(first.headers['set-cookie']?.[0] ?? '', /^rt_sticky=c2;/);
  const again = await request(h.port, 'stickydead.localhost', { headers: { cookie: 'rt_sticky=dead' } });
  assert.equal(again.body.split(' ')[0], 'c2');
  assert.equal(await metricValue(h.metrics, 'router_upstream_errors_total', { code: 'UPSTREAM_REFUSED' }), errors + 1, 'the ejected container was not tried for the cookie');
});
