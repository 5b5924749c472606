import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { loadControlPlaneConfig } from '../src/config.js';
import { startControlPlane, type ControlPlane } from '../src/control-plane.js';
import { decodeHostRecord } from '../../proto/records.js';
import { redisUrl } from '../../test-support/redis.js';
import { TEST_TOKEN, startHarness, type Harness } from '../../test-support/control-plane.js';

let h: Harness;
let second: ControlPlane;
before(async () => {
  h = await startHarness('multi');
  const config = loadControlPlaneConfig({ REDIS_URL: redisUrl(), REDIS_PREFIX: h.prefix, CONTROL_PLANE_PORT: '0', CONTROL_PLANE_GRPC_PORT: '0', CONTROL_PLANE_TOKENS: TEST_TOKEN });
  second = await startControlPlane(config, pino({ level: 'silent' }));
});
after(async () => {
  await second.close();
  await h.close();
});

async function postTo(port: number, body: unknown) {
  const res = await fetch(`http://127.0.0.1:${port}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TEST_TOKEN}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as { code?: string; duplicate?: boolean } };
}

test('two control planes writing one app alternately: every event applies, none is lost or reordered', async () => {
  const ports = [h.cp.restPort, second.restPort];
  for (let seq = 1; seq <= 60; seq++) {
    const res = await postTo(ports[seq % 2]!, { id: `multi-${seq}`, app: 'shared-app', seq, type: 'scale', containers: [{ id: `w${seq}`, host: '10.0.0.1', port: 1000 + seq }] });
    assert.equal(res.status, 200, `seq ${seq}: ${JSON.stringify(res.body)}`);
  }
  const rec = decodeHostRecord((await h.redis.get(h.keys.host('shared-app.localhost')))!);
  assert.deepEqual(rec.containers, [{ id: 'w60', host: '10.0.0.1', port: 1060 }]);
  const conflicts = (await h.cp.metrics.applyConflicts.get()).values[0]?.value ?? 0;
  const conflicts2 = (await second.metrics.applyConflicts.get()).values[0]?.value ?? 0;
  assert.ok(conflicts + conflicts2 >= 50, `stale caches were detected and re-read (${conflicts + conflicts2})`);

  // A stale event sent to the instance whose cache is behind is still refused...
  const stale = await postTo(ports[1]!, { id: 'multi-stale', app: 'shared-app', seq: 30, type: 'stop' });
  assert.equal(stale.status, 409);
  assert.equal(stale.body.code, 'STALE_EVENT');
  // ...and a retry of an applied event is a duplicate on either instance.
  for (const port of ports) {
    const dup = await postTo(port, { id: 'multi-59', app: 'shared-app', seq: 59, type: 'scale', containers: [{ id: 'w59', host: '10.0.0.1', port: 1059 }] });
    assert.equal(dup.status, 200);
    assert.equal(dup.body.duplicate, true);
  }
});
