import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { wantsJson } from '../src/proxy/error-page.js';
import { hostRecord, metricValue, rawExchange, request, startRouter, startUpstream, type Harness, type Upstream } from './proxy-harness.test.js';

let h: Harness;
let up: Upstream;

before(async () => {
  up = await startUpstream('c1');
  h = await startRouter();
  h.routes.set('live.localhost', hostRecord('live', [up.container]));
  h.routes.set('stopped.localhost', hostRecord('stopped', [], {}, 'stopped'));
  h.routes.set('empty.localhost', hostRecord('empty', []));
});
after(async () => {
  await h.close();
  await up.close();
});

function lastLine(host: string) {
  const line = h.lines.filter((l) => l.host === host).at(-1);
  assert.ok(line, `an access-log line for ${host}`);
  return line;
}

test('unknown host → 404 UNKNOWN_HOST: HTML by default, JSON when Accept prefers it', async () => {
  const html = await request(h.port, 'nobody.localhost');
  assert.equal(html.status, 404);
  assert.match(html.headers['content-type'] ?? '', /^text\/html/);
  assert.match(html.body, /<h1>No such app<\/h1>/);
  assert.match(html.body, /UNKNOWN_HOST/);
  assert.equal(Number(html.headers['content-length']), Buffer.byteLength(html.body));
  assert.ok(html.headers['x-request-id'], 'router answers carry a request id too');

  const json = await request(h.port, 'nobody.localhost', { headers: { accept: 'application/json' } });
  assert.equal(json.status, 404);
  assert.match(json.headers['content-type'] ?? '', /^application\/json/);
  assert.deepEqual(JSON.parse(json.body), { code: 'UNKNOWN_HOST', status: 404, title: 'No such app', message: 'No app answers on this hostname.' });

  const line = lastLine('nobody.localhost');
  assert.equal(line.code, 'UNKNOWN_HOST');
  assert.equal(line.status, 404);
  assert.equal(line.app, '-');
  assert.equal(line.container, '-');
  assert.equal(line.protocol, 'http/1.1');
  assert.equal(await metricValue(h.metrics, 'router_requests_total', { code: 'UNKNOWN_HOST', class: '4xx' }), 2);
});

test('Accept negotiation ranks quality, then specificity; HTML wins ties', () => {
  assert.equal(wantsJson(undefined), false);
  assert.equal(wantsJson('text/html,application/xhtml+xml,*/*;q=0.8'), false, 'a browser');
  assert.equal(wantsJson('application/json'), true);
  assert.equal(wantsJson('application/json, text/plain, */*'), true, 'axios');
  assert.equal(wantsJson('text/html;q=0.9, application/json'), true);
  assert.equal(wantsJson('application/json;q=0.5, text/html'), false);
  assert.equal(wantsJson('application/json;q=0, */*'), false);
  assert.equal(wantsJson('*/*'), false);
});

test('stopped app, or running with no container → 503 APP_STOPPED', async () => {
  for (const host of ['stopped.localhost', 'empty.localhost']) {
    const res = await request(h.port, host, { headers: { accept: 'application/json' } });
    assert.equal(res.status, 503, host);
    assert.equal(JSON.parse(res.body).code, 'APP_STOPPED');
    const line = lastLine(host);
    assert.equal(line.code, 'APP_STOPPED');
    assert.equal(line.app, host.split('.')[0]);
  }
});

test('missing, invalid or repeated Host → 400 BAD_HOST', async () => {
  for (const raw of [
    'GET / HTTP/1.1\r\nConnection: close\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: bad_host.localhost\r\nConnection: close\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: x.localhost:http\r\nConnection: close\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: live.localhost\r\nHost: other.localhost\r\nConnection: close\r\n\r\n',
  ]) {
    const res = await rawExchange(h.port, raw);
    assert.match(res, /^HTTP\/1\.1 400 /, raw);
    assert.match(res, /BAD_HOST/);
  }
  assert.equal(up.hits, 0, 'nothing reached the container');
  assert.ok(h.lines.some((l) => l.code === 'BAD_HOST' && l.host === 'bad_host.localhost'));
});

test('store down and name not cached → 503 STORE_UNAVAILABLE, sync throw and async rejection alike', async () => {
  h.routes.down = true;
  try {
    for (const async of [false, true]) {
      h.routes.async = async;
      const res = await request(h.port, 'live.localhost', { headers: { accept: 'application/json' } });
      assert.equal(res.status, 503, `async=${async}`);
      assert.equal(JSON.parse(res.body).code, 'STORE_UNAVAILABLE');
    }
  } finally {
    h.routes.down = false;
    h.routes.async = false;
  }
  assert.equal(lastLine('live.localhost').code, 'STORE_UNAVAILABLE');
});

test('async lookups (cache misses) proxy like sync ones', async () => {
  h.routes.async = true;
  try {
    const res = await request(h.port, 'live.localhost', { path: '/miss' });
    assert.equal(res.status, 200);
    assert.equal(res.body, 'c1 GET /miss');
  } finally {
    h.routes.async = false;
  }
});

test('a proxied request logs one line with the app, the container and timings', async () => {
  const before = h.lines.length;
  const res = await request(h.port, 'live.localhost', { path: '/p?q=1', headers: { 'x-request-id': 'req-id-from-the-client-0001' } });
  assert.equal(res.status, 200);
  const mine = h.lines.slice(before);
  assert.equal(mine.length, 1);
  const line = mine[0]!;
  assert.deepEqual(Object.keys(line), ['at', 'code', 'app', 'method', 'host', 'path', 'status', 'bytes_in', 'bytes_out', 'connect_ms', 'service_ms', 'request_id', 'container', 'client_ip', 'protocol']);
  assert.equal(line.code, '-');
  assert.equal(line.app, 'live');
  assert.equal(line.path, '/p?q=1');
  assert.equal(line.status, 200);
  assert.equal(line.bytes_out, Buffer.byteLength('c1 GET /p?q=1'));
  assert.equal(line.request_id, 'req-id-from-the-client-0001');
  assert.equal(line.container, 'c1');
  assert.equal(line.client_ip, '127.0.0.1');
  assert.ok(line.connect_ms >= 0 && line.service_ms >= 0);
  assert.ok(Math.abs(line.at - Date.now()) < 5000);
  assert.equal(await metricValue(h.metrics, 'router_requests_total', { app: 'live', class: '2xx', code: '-' }) >= 1, true);
  assert.equal(h.router.stats().inflight, 0);
});
