import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { countingHandler, hostRecord, rawExchange, startRouter, startUpstream, sleep, type Harness, type Upstream } from './proxy-harness.test.js';

let h: Harness;
let up: Upstream;

before(async () => {
  up = await startUpstream('c1', countingHandler('c1'));
  h = await startRouter({ ROUTER_HEADERS_TIMEOUT: '500', ROUTER_KEEPALIVE_TIMEOUT: '1500' });
  h.routes.set('app.localhost', hostRecord('app', [up.container]));
});
after(async () => {
  await h.close();
  await up.close();
});

test('slowloris: headers sent a byte at a time are cut at the headers timeout with 408', async () => {
  const hits = up.hits;
  const started = Date.now();
  const result = await new Promise<{ data: string; closedAfter: number }>((resolve) => {
    const socket = net.connect(h.port, '127.0.0.1');
    const request = 'GET / HTTP/1.1\r\nHost: app.localhost\r\nX-Slow: ' + 'z'.repeat(100);
    let i = 0;
    let data = '';
    const drip = setInterval(() => {
      if (i < request.length && socket.writable) socket.write(request[i++]!);
    }, 50);
    socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearInterval(drip);
      resolve({ data, closedAfter: Date.now() - started });
    });
  });
  assert.match(result.data, /^HTTP\/1\.1 408 /);
  assert.match(result.data, /REQUEST_TIMEOUT/);
  assert.ok(result.closedAfter >= 450 && result.closedAfter < 3000, `closed after ${result.closedAfter} ms`);
  assert.equal(up.hits, hits, 'nothing reached the container');
  assert.ok(h.lines.some((l) => l.code === 'REQUEST_TIMEOUT' && l.status === 408));
});

test('a connection that never sends anything is closed too', async () => {
  const started = Date.now();
  await new Promise<void>((resolve) => {
    const socket = net.connect(h.port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.on('close', () => resolve());
    socket.resume();
  });
  assert.ok(Date.now() - started < 3000);
});

test('an idle keep-alive connection outlives the headers timeout, serves the next request, and closes at the keep-alive timeout', async () => {
  const socket = net.connect(h.port, '127.0.0.1');
  socket.on('error', () => undefined);
  let data = '';
  let closedAt = 0;
  socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
  socket.on('close', () => (closedAt = Date.now()));
  const ask = async (): Promise<void> => {
    const before = data.length;
    socket.write('GET /ka HTTP/1.1\r\nHost: app.localhost\r\n\r\n');
    for (let i = 0; i < 200 && !data.slice(before).includes('c1 GET /ka'); i++) await sleep(10);
    assert.match(data.slice(before), /^HTTP\/1\.1 200 [^]*c1 GET \/ka 0$/);
  };
  await ask();
  await sleep(1000); // twice the headers timeout, within the keep-alive timeout
  assert.equal(closedAt, 0, 'closed while idle between requests');
  await ask();
  const idleFrom = Date.now();
  for (let i = 0; i < 400 && closedAt === 0; i++) await sleep(10);
  assert.ok(closedAt > 0, 'an idle connection past the keep-alive timeout must be closed');
  assert.ok(closedAt - idleFrom >= 1200, `closed after ${closedAt - idleFrom} ms of idleness`);
});

test('a slow upload is not cut by the headers timeout (no request timeout)', async () => {
  const answer = await new Promise<string>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: h.port, path: '/slow-upload', method: 'POST', headers: { host: 'app.localhost' }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    let n = 0;
    const tick = setInterval(() => {
      req.write('0123456789');
      if (++n === 15) {
        clearInterval(tick);
        req.end();
      }
    }, 100);
  });
  assert.equal(answer, 'c1 POST /slow-upload 150');
});

test('Content-Length with Transfer-Encoding (smuggling) → 400, and the container never sees a request', async () => {
  const hits = up.hits;
  const smuggled = 'GET /smuggled HTTP/1.1\r\nHost: app.localhost\r\n\r\n';
  const res = await rawExchange(
    h.port,
    `POST / HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: ${5 + smuggled.length}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
  );
  assert.match(res, /^HTTP\/1\.1 400 /);
  assert.match(res, /BAD_REQUEST/);
  assert.ok(!res.includes('HTTP/1.1 200'), 'no second answer');
  await sleep(100);
  assert.equal(up.hits, hits);
});

test('malformed request line → 400 BAD_REQUEST', async () => {
  const res = await rawExchange(h.port, 'GARBAGE\r\n\r\n');
  assert.match(res, /^HTTP\/1\.1 400 /);
  assert.ok(h.lines.some((l) => l.code === 'BAD_REQUEST'));
});

test('oversized headers → 431 HEADERS_TOO_LARGE, and the router keeps serving', async () => {
  const res = await rawExchange(h.port, `GET / HTTP/1.1\r\nHost: app.localhost\r\nX-Big: ${'b'.repeat(20 * 1024)}\r\n\r\n`);
  assert.match(res, /^HTTP\/1\.1 431 /);
  assert.match(res, /HEADERS_TOO_LARGE/);
  const ok = await rawExchange(h.port, 'GET /after HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n');
  assert.match(ok, /^HTTP\/1\.1 200 /);
  assert.match(ok, /c1 GET \/after 0/);
});
