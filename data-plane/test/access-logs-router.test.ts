import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../proto/config/env.js';
import { captureLog } from '../../test-support/access-logs.js';
import { LogReceiver } from '../../test-support/log-receiver.js';
import { eventually, startStack, startUpstream, type Stack, type Upstream } from '../../test-support/router.js';
import { loadRouterConfig } from '../src/config.js';

/** Deploys `app` on `up` and waits until the router serves it (a deploy refused for a Redis hiccup is sent again). */
async function deployed(s: Stack, app: string, up: Upstream): Promise<void> {
  await eventually(async () => (await s.h.deploy(app, [up.container])).status === 200, 5000, 50);
  await eventually(async () => (await s.get(`${app}.localhost`, '/warmup')).status === 200, 5000);
}

test('through a real router: N requests give exactly N lines at the receiver, per app, with the right fields; unknown hosts in the "-" section', async (t) => {
  const receiver = await LogReceiver.start();
  const up1 = await startUpstream('c1');
  const up2 = await startUpstream('c2');
  const s = await startStack('alog', { LOG_SHIPPER_URL: receiver.url, LOG_SHIPPER_TOKEN: receiver.token, LOG_BATCH_MS: '50' }, { accessLog: undefined });
  // The router first: its close waits for the receiver's acks.
  t.after(async () => {
    await s.close();
    await Promise.all([receiver.close(), up1.close(), up2.close()]);
  });
  await deployed(s, 'logged-one', up1);
  await deployed(s, 'logged-two', up2);
  // Lines of the warm-up requests are counted out.
  await new Promise((r) => setTimeout(r, 200));
  const before = receiver.lineCount();

  const n = 30;
  for (let i = 0; i < n; i++) {
    assert.equal((await s.get('logged-one.localhost', `/one/${i}?q="x"`)).status, 200);
    if (i % 2 === 0) assert.equal((await s.get('logged-two.localhost', `/two/${i}`)).status, 200);
  }
  for (let i = 0; i < 4; i++) assert.equal((await s.get(`nobody-${i}.localhost`, `/lost/${i}`)).status, 404);
  const expected = n + n / 2 + 4;
  await eventually(async () => receiver.lineCount() === before + expected, 5000);
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(receiver.lineCount(), before + expected, 'exactly one line per request');

  const lines = receiver.lines().slice(before);
  const one = lines.filter((l) => l.app === 'logged-one').map((l) => l.line);
  const two = lines.filter((l) => l.app === 'logged-two').map((l) => l.line);
  const unrouted = lines.filter((l) => l.app === '-').map((l) => l.line);
  assert.equal(one.length, n);
  assert.equal(two.length, n / 2);
  assert.equal(unrouted.length, 4);
  assert.deepEqual(one.map((l) => l['path']), Array.from({ length: n }, (_, i) => `/one/${i}?q="x"`));
  for (const l of one) {
    assert.equal(l['app'], 'logged-one');
    assert.equal(l['host'], 'logged-one.localhost');
    assert.equal(l['method'], 'GET');
    assert.equal(l['status'], 200);
    assert.equal(l['code'], '-');
    assert.equal(l['container'], 'c1');
    assert.equal(l['client_ip'], '127.0.0.1');
    assert.equal(l['protocol'], 'http/1.1');
    assert.ok(typeof l['at'] === 'number' && typeof l['service_ms'] === 'number' && typeof l['request_id'] === 'string');
    assert.ok((l['bytes_out'] as number) > 0);
  }
  assert.ok(two.every((l) => l['container'] === 'c2' && l['app'] === 'logged-two'));
  for (const l of unrouted) {
    assert.equal(l['app'], '-');
    assert.equal(l['code'], 'UNKNOWN_HOST');
    assert.equal(l['status'], 404);
    assert.match(String(l['host']), /^nobody-\d\.localhost$/);
  }
  const exposed = await s.router.metrics.registry.metrics();
  assert.match(exposed, /router_access_log_shipper_up 1/);
  assert.match(exposed, /router_access_log_acks_total\{status="ok"\} \d+/);
});

test('closing the router delivers the last batch before it returns', async (t) => {
  const receiver = await LogReceiver.start();
  const up = await startUpstream('c1');
  const s = await startStack('alog-close', { LOG_SHIPPER_URL: receiver.url, LOG_SHIPPER_TOKEN: receiver.token, LOG_BATCH_MS: '60000' }, { accessLog: undefined });
  let closed = false;
  t.after(async () => {
    if (!closed) await s.close();
    await Promise.all([receiver.close(), up.close()]);
  });
  await deployed(s, 'closing', up);
  for (let i = 0; i < 12; i++) assert.equal((await s.get('closing.localhost', `/last/${i}`)).status, 200);
  assert.equal(receiver.lineCount(), 0, 'nothing sent yet: the time bound is a minute away');
  await s.close();
  closed = true;
  const last = receiver.lines().filter((l) => String(l.line['path']).startsWith('/last/'));
  assert.equal(last.length, 12);
});

test('a bad token: logged as an error, no crash, nothing delivered, proxying unaffected', async (t) => {
  const receiver = await LogReceiver.start({ token: 'expected-token' });
  const up = await startUpstream('c1');
  const captured = captureLog();
  const s = await startStack('alog-token', { LOG_SHIPPER_URL: receiver.url, LOG_SHIPPER_TOKEN: 'not-the-token', LOG_BATCH_MS: '20' }, { accessLog: undefined, log: captured.log });
  t.after(async () => {
    await s.close();
    await Promise.all([receiver.close(), up.close()]);
  });
  await deployed(s, 'tokened', up);
  for (let i = 0; i < 20; i++) {
    const res = await s.get('tokened.localhost', `/p/${i}`);
    assert.equal(res.status, 200);
    assert.equal(res.body, `c1 GET /p/${i}`);
  }
  await eventually(async () => receiver.refused >= 2, 5000);
  assert.equal(receiver.batches.length, 0);
  const error = captured.lines.find((l) => l['level'] === 50 && String(l['msg']).includes('LOG_SHIPPER_TOKEN'));
  assert.ok(error, 'the refusal is logged as an error');
  assert.ok(!JSON.stringify(captured.lines).includes('not-the-token'));
});

test('config: LOG_SHIPPER_URL needs LOG_SHIPPER_TOKEN; addresses are tcp://host:port or host:port; bounds are checked', () => {
  const base = { REDIS_URL: 'redis://127.0.0.1:6379' };
  assert.throws(
    () => loadRouterConfig({ ...base, LOG_SHIPPER_URL: 'tcp://logs.internal:7070' }),
    (err: unknown) => err instanceof ConfigError && /LOG_SHIPPER_URL/.test(err.message) && /LOG_SHIPPER_TOKEN/.test(err.message),
  );
  assert.deepEqual(loadRouterConfig({ ...base, LOG_SHIPPER_URL: 'tcp://logs.internal:7070', LOG_SHIPPER_TOKEN: 't' }).logShipper, { host: 'logs.internal', port: 7070 });
  assert.deepEqual(loadRouterConfig({ ...base, LOG_SHIPPER_URL: '10.0.0.5:7070', LOG_SHIPPER_TOKEN: 't' }).logShipper, { host: '10.0.0.5', port: 7070 });
  assert.deepEqual(loadRouterConfig({ ...base, LOG_SHIPPER_URL: 'tcp://[::1]:7070', LOG_SHIPPER_TOKEN: 't' }).logShipper, { host: '::1', port: 7070 });
  const unset = loadRouterConfig({ ...base, LOG_SHIPPER_URL: '' });
  assert.equal(unset.logShipper, undefined, 'empty: stdout');
  assert.equal(unset.logBatchBytes, 65536);
  assert.equal(unset.logBatchMs, 200);
  assert.equal(unset.logSpoolBytes, 64 * 1024 * 1024);
  for (const bad of ['http://logs:7070', 'logs', 'logs:0', 'logs:99999', 'tcp://logs']) {
    assert.throws(() => loadRouterConfig({ ...base, LOG_SHIPPER_URL: bad, LOG_SHIPPER_TOKEN: 't' }), /LOG_SHIPPER_URL: must be tcp:\/\/host:port or host:port/, bad);
  }
  assert.throws(() => loadRouterConfig({ ...base, LOG_BATCH_BYTES: '512' }), /LOG_BATCH_BYTES/);
  assert.throws(() => loadRouterConfig({ ...base, LOG_BATCH_BYTES: String(2 * 1024 * 1024) }), /LOG_BATCH_BYTES/);
  assert.throws(() => loadRouterConfig({ ...base, LOG_BATCH_BYTES: '65536', LOG_SPOOL_BYTES: '4096' }), /LOG_SPOOL_BYTES must be at least LOG_BATCH_BYTES/);
  assert.throws(
    () => loadRouterConfig({ ...base, LOG_SHIPPER_URL: 'nope', LOG_SHIPPER_TOKEN: 'super-secret-token' }),
    (err: unknown) => err instanceof ConfigError && !err.message.includes('super-secret-token'),
  );
});
