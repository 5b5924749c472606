import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { eventually, startStack, startUpstream, type Stack, type Upstream } from '../../test-support/router.js';

let s: Stack;
const ups: Upstream[] = [];

before(async () => {
  s = await startStack('e2e');
  for (const id of ['c1', 'c2', 'c3']) ups.push(await startUpstream(id));
});
after(async () => {
  await s.close();
  await Promise.all(ups.map((u) => u.close()));
});

const c1 = (): Upstream => ups[0]!;
const c2 = (): Upstream => ups[1]!;
const c3 = (): Upstream => ups[2]!;

describe('routes live from the control plane, no restart', () => {
  test('a deploy is routed at once; the answer comes from the container', async () => {
    const before = await s.get('fresh.localhost');
    assert.equal(before.status, 404, 'unknown before the deploy');
    assert.equal((await s.h.deploy('fresh', [c1().container])).status, 200);
    // The negative entry of the 404 above must be dropped by the deploy's invalidation,
    // not by waiting out the negative TTL (5 s).
    const took = await eventually(async () => (await s.get('fresh.localhost')).status === 200, 1000);
    const res = await s.get('fresh.localhost', '/hello?x=1');
    assert.equal(res.status, 200);
    assert.equal(res.body, 'c1 GET /hello?x=1');
    assert.ok(took < 1000, `live in ${took.toFixed(1)} ms`);
  });

  test('a scale moves traffic to the new containers', async () => {
    await s.h.deploy('mover', [c1().container]);
    await eventually(async () => (await s.get('mover.localhost')).body.startsWith('c1'));
    await s.h.send({ app: 'mover', type: 'scale', containers: [c2().container, c3().container] });
    await eventually(async () => !(await s.get('mover.localhost')).body.startsWith('c1'));
    const seen = new Set<string>();
    for (let i = 0; i < 40; i++) seen.add((await s.get('mover.localhost')).body.split(' ')[0]!);
    assert.deepEqual([...seen].sort(), ['c2', 'c3']);
  });

  test('stop → 503 APP_STOPPED; deploy again → 200; delete → 404', async () => {
    await s.h.deploy('cycle', [c1().container]);
    await eventually(async () => (await s.get('cycle.localhost')).status === 200);
    await s.h.send({ app: 'cycle', type: 'stop' });
    await eventually(async () => (await s.get('cycle.localhost')).status === 503);
    const stopped = await s.get('cycle.localhost', '/', { accept: 'application/json' });
    assert.equal(JSON.parse(stopped.body).code, 'APP_STOPPED');
    await s.h.deploy('cycle', [c2().container]);
    await eventually(async () => (await s.get('cycle.localhost')).status === 200);
    await s.h.send({ app: 'cycle', type: 'delete' });
    await eventually(async () => (await s.get('cycle.localhost')).status === 404);
    const gone = await s.get('cycle.localhost', '/', { accept: 'application/json' });
    assert.equal(JSON.parse(gone.body).code, 'UNKNOWN_HOST');
  });

  test('custom domains and one-label wildcards', async () => {
    await s.h.deploy('shop', [c3().container]);
    await s.h.send({ app: 'shop', type: 'domains', domains: ['www.shop.test', '*.shop.example'] });
    await eventually(async () => (await s.get('www.shop.test')).status === 200);
    assert.equal((await s.get('WWW.Shop.Test.:80')).body.split(' ')[0], 'c3', 'Host normalized');
    assert.equal((await s.get('eu.shop.example')).status, 200);
    assert.equal((await s.get('a.b.shop.example')).status, 404, 'wildcards cover one label');
    await s.h.send({ app: 'shop', type: 'domains', domains: ['www.shop.test'] });
    await eventually(async () => (await s.get('eu.shop.example')).status === 404);
  });

  test('bad or missing Host → 400', async () => {
    for (const host of ['bad host', 'under_score.test', 'x:notaport']) {
      const res = await s.get(host, '/', { accept: 'application/json' });
      assert.equal(res.status, 400, JSON.stringify(host));
      assert.equal(JSON.parse(res.body).code, 'BAD_HOST');
    }
    // No Host at all (HTTP/1.1 requires one): raw bytes, since clients always add it.
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(s.router.port, '127.0.0.1', () => socket.end('GET / HTTP/1.1\r\nConnection: close\r\n\r\n'));
      let data = '';
      socket.on('data', (c: Buffer) => (data += c.toString()));
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
    assert.match(raw, /^HTTP\/1\.1 400 /);
  });

  test('every request yields one access-log line with its code', async () => {
    const before = s.accessLines.length;
    await s.get('nobody.localhost');
    await s.h.deploy('logged', [c1().container]);
    await eventually(async () => (await s.get('logged.localhost', '/path')).status === 200);
    const lines = s.accessLines.slice(before);
    const unknown = lines.find((l) => l.host === 'nobody.localhost');
    assert.equal(unknown?.code, 'UNKNOWN_HOST');
    assert.equal(unknown?.status, 404);
    const ok = lines.filter((l) => l.host === 'logged.localhost' && l.status === 200).at(-1);
    assert.ok(ok, 'a 200 line');
    assert.equal(ok.path, '/path');
    assert.equal(ok.method, 'GET');
    assert.equal(typeof ok.request_id, 'string');
  });
});

describe('propagation', () => {
  test('from the API 200 to the first response from the new container', async () => {
    await s.h.deploy('prop', [c1().container]);
    await eventually(async () => (await s.get('prop.localhost')).body.startsWith('c1'));
    const delays: number[] = [];
    for (let i = 0; i < 20; i++) {
      const target = i % 2 === 0 ? c2() : c1();
      const res = await s.h.send({ app: 'prop', type: 'scale', containers: [target.container] });
      assert.equal(res.status, 200);
      delays.push(await eventually(async () => (await s.get('prop.localhost')).body.startsWith(target.id), 1000, 0));
    }
    // Correctness only (no timing assertion): every change became visible, none took the TTL.
    assert.equal(delays.length, 20);
    assert.ok(delays.every((d) => d < 1000));
  });
});
