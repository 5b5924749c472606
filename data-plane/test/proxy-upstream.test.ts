import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash } from 'node:crypto';
import {
  hostRecord,
  metricValue,
  refusedPort,
  request,
  startRouter,
  startUpstream,
  until,
  type Harness,
  type Upstream,
} from './proxy-harness.test.js';

let h: Harness;
let good: Upstream;
let second: Upstream;
let tricky: Upstream;
const seenClose: string[] = [];

before(async () => {
  good = await startUpstream('good', (req, res): void => {
    if (req.url === '/upload') {
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (c: Buffer) => {
        bytes += c.length;
        hash.update(c);
      });
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ bytes, sha: hash.digest('hex'), te: req.headers['transfer-encoding'] ?? null, expect: req.headers['expect'] ?? null }));
      });
      return;
    }
    if (req.url === '/slow-headers') {
      setTimeout(() => res.end('late'), 3000).unref();
      return;
    }
    if (req.url === '/stall-body') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first chunk');
      req.on('close', () => seenClose.push('stall-body closed'));
      return;
    }
    if (req.url === '/cut-body') {
      res.writeHead(200, { 'content-length': '100' });
      res.write('only part');
      setTimeout(() => res.destroy(), 20);
      return;
    }
    if (req.url === '/too-large') {
      // Answers before reading the body, as apps do for 413 or 401.
      res.writeHead(413, { 'content-type': 'text/plain' });
      res.end('too large');
      return;
    }
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-length': '1234', 'x-head': 'yes' });
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`good ${req.method} ${req.url}`);
  });
  second = await startUpstream('second');
  // Reads the request, then drops the connection without answering.
  tricky = await startUpstream('tricky', (req) => {
    req.resume();
    req.on('end', () => req.socket.destroy());
  });
  h = await startRouter({ ROUTER_FIRST_BYTE_TIMEOUT: '300', ROUTER_IDLE_TIMEOUT: '1500', ROUTER_EJECT_TIME: '60000' });
  h.routes.set('app.localhost', hostRecord('app', [good.container]));
});
after(async () => {
  await h.close();
  await Promise.all([good.close(), second.close(), tricky.close()]);
});

test('a refusing container is ejected and the request retried on another; later requests skip it', async () => {
  const dead = { id: 'dead', host: '127.0.0.1', port: await refusedPort() };
  h.routes.set('retry.localhost', hostRecord('retry', [dead, good.container], { balancer: 'round_robin' }));
  const first = await request(h.port, 'retry.localhost', { path: '/first', method: 'POST', body: 'a body, whatever the method' });
  assert.equal(first.status, 200);
  assert.equal(first.body, 'good POST /first');
  assert.equal(await metricValue(h.metrics, 'router_upstream_retries_total'), 1);
  assert.equal(await metricValue(h.metrics, 'router_container_ejections_total'), 1);
  assert.equal(await metricValue(h.metrics, 'router_upstream_errors_total', { code: 'UPSTREAM_REFUSED' }), 1);
  assert.equal(h.lines.at(-1)?.container, 'good');

  for (let i = 0; i < 10; i++) assert.equal((await request(h.port, 'retry.localhost')).status, 200);
  assert.equal(await metricValue(h.metrics, 'router_upstream_errors_total', { code: 'UPSTREAM_REFUSED' }), 1, 'the ejected container was not tried again');
});

test('every container refuses → 502 UPSTREAM_REFUSED', async () => {
  const a = { id: 'a', host: '127.0.0.1', port: await refusedPort() };
  const b = { id: 'b', host: '127.0.0.1', port: await refusedPort() };
  h.routes.set('down.localhost', hostRecord('down', [a, b]));
  const res = await request(h.port, 'down.localhost', { headers: { accept: 'application/json' } });
  assert.equal(res.status, 502);
  assert.equal(JSON.parse(res.body).code, 'UPSTREAM_REFUSED');
  assert.equal(h.lines.at(-1)?.code, 'UPSTREAM_REFUSED');
  // Both ejected now, but an ejection may be stale: the router still tries rather than fail blind.
  assert.equal((await request(h.port, 'down.localhost')).status, 502);
});

test('no response headers within the first-byte timeout → 504 UPSTREAM_TIMEOUT, not retried', async () => {
  const hits = good.hits;
  const started = Date.now();
  const res = await request(h.port, 'app.localhost', { path: '/slow-headers', headers: { accept: 'application/json' } });
  const took = Date.now() - started;
  assert.equal(res.status, 504);
  assert.equal(JSON.parse(res.body).code, 'UPSTREAM_TIMEOUT');
  // undici's header timer has a coarse (~0.5-1 s) resolution above its native-timer range.
  assert.ok(took >= 280 && took < 1450, `took ${took} ms`);
  assert.equal(good.hits - hits, 1);
});

test('no bytes either way for the idle timeout → connection closed, IDLE_TIMEOUT logged', async () => {
  const started = Date.now();
  const outcome = await new Promise<string>((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: h.port, path: '/stall-body', headers: { host: 'app.localhost' }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('error', () => resolve(`aborted after ${JSON.stringify(body)}`));
      res.on('end', () => resolve(`ended ${body}`));
    });
    req.on('error', (err) => resolve(`error ${err.message}`));
    req.end();
  });
  const took = Date.now() - started;
  assert.equal(outcome, 'aborted after "first chunk"');
  assert.ok(took >= 1450 && took < 4000, `closed after ${took} ms`);
  assert.ok(await until(() => seenClose.includes('stall-body closed')), 'the upstream request was aborted too');
  const line = h.lines.find((l) => l.path === '/stall-body');
  assert.equal(line?.code, 'IDLE_TIMEOUT');
  assert.equal(line?.status, 200);
});

function openConnections(up: Upstream): Promise<number> {
  return new Promise((resolve) => up.server.getConnections((_err, n) => resolve(n)));
}

test('client abort mid-request: the upstream sees it, nothing stays in flight, no socket is left, the pool keeps working', async () => {
  const closes: string[] = [];
  const abortee = await startUpstream('abortee', (req, res) => {
    if (req.url === '/hang') {
      req.on('close', () => closes.push(`complete=${req.complete}`));
      req.socket.on('close', () => closes.push('socket closed'));
      return;
    }
    res.end('fine');
  });
  try {
    h.routes.set('abort.localhost', hostRecord('abort', [abortee.container]));
    await new Promise<void>((resolve) => {
      const req = http.request({ host: '127.0.0.1', port: h.port, path: '/hang', method: 'POST', headers: { host: 'abort.localhost', 'content-length': '1000' }, agent: false });
      req.on('error', () => resolve());
      req.write('x'.repeat(100));
      // Abort once the container has the request, mid-body.
      void until(() => abortee.hits === 1).then(() => req.destroy());
    });
    assert.ok(await until(() => closes.length === 2), 'upstream request closed');
    assert.deepEqual(closes.sort(), ['complete=false', 'socket closed'], 'the aborted request took its socket with it');
    assert.ok(await until(() => h.router.stats().inflight === 0));
    const line = h.lines.find((l) => l.host === 'abort.localhost');
    assert.equal(line?.code, 'CLIENT_ABORTED');
    assert.equal(line?.status, 499);
    assert.equal(await metricValue(h.metrics, 'router_inflight_requests', { app: 'abort' }), 0);
    // undici may open one fresh idle connection after losing one; it must be that one that is reused.
    assert.ok((await openConnections(abortee)) <= 1);
    assert.equal((await request(h.port, 'abort.localhost', { path: '/after' })).body, 'fine');
    assert.equal(await openConnections(abortee), 1, 'one keep-alive connection, reused');
    assert.equal((await request(h.port, 'abort.localhost', { path: '/again' })).body, 'fine');
    assert.equal(await openConnections(abortee), 1);
  } finally {
    await abortee.close();
  }
});

test('chunked upload is streamed through and re-framed', async () => {
  const chunks = Array.from({ length: 50 }, (_, i) => Buffer.alloc(1000 + i, i));
  const expected = createHash('sha256').update(Buffer.concat(chunks)).digest('hex');
  const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: h.port, path: '/upload', method: 'POST', headers: { host: 'app.localhost' }, agent: false }, (r) => {
      let body = '';
      r.on('data', (c: Buffer) => (body += c.toString()));
      r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    // Half now, half once the container has the request: the router cannot know the length.
    for (const chunk of chunks.slice(0, 25)) req.write(chunk);
    void until(() => good.last?.url === '/upload').then(() => {
      for (const chunk of chunks.slice(25)) req.write(chunk);
      req.end();
    });
  });
  assert.equal(res.status, 200);
  const got = JSON.parse(res.body) as { bytes: number; sha: string; te: string | null };
  assert.equal(got.bytes, 50 * 1000 + (49 * 50) / 2);
  assert.equal(got.sha, expected);
  assert.equal(got.te, 'chunked');
  assert.equal(h.lines.at(-1)?.bytes_in, got.bytes);
});

test('Expect: 100-continue: the router answers 100 only once the route is known, then forwards the body', async () => {
  const run = (host: string): Promise<{ continued: boolean; status: number; body: string }> =>
    new Promise((resolve, reject) => {
      let continued = false;
      const req = http.request({ host: '127.0.0.1', port: h.port, path: '/upload', method: 'PUT', headers: { host, expect: '100-continue', 'content-length': '5', accept: 'application/json' }, agent: false }, (r) => {
        let body = '';
        r.on('data', (c: Buffer) => (body += c.toString()));
        r.on('end', () => resolve({ continued, status: r.statusCode ?? 0, body }));
      });
      req.on('continue', () => {
        continued = true;
        req.end('hello');
      });
      req.on('error', reject);
      req.flushHeaders();
    });
  const ok = await run('app.localhost');
  assert.equal(ok.continued, true);
  assert.equal(ok.status, 200);
  const got = JSON.parse(ok.body) as { bytes: number; expect: string | null };
  assert.equal(got.bytes, 5);
  assert.equal(got.expect, null, 'Expect is answered here, not forwarded');

  const unknown = await run('nobody.localhost');
  assert.equal(unknown.continued, false, 'no 100 for a request the router refuses');
  assert.equal(unknown.status, 404);
});

test('HEAD keeps the length header and sends no body; the connection stays usable', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const head = await new Promise<{ status: number; length: string | undefined; body: number }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: h.port, method: 'HEAD', path: '/', headers: { host: 'app.localhost' }, agent }, (r) => {
        let n = 0;
        r.on('data', (c: Buffer) => (n += c.length));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, length: r.headers['content-length'], body: n }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.deepEqual(head, { status: 200, length: '1234', body: 0 });
    const next = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: h.port, path: '/next', headers: { host: 'app.localhost' }, agent }, (r) => {
        let body = '';
        r.on('data', (c: Buffer) => (body += c.toString()));
        r.on('end', () => resolve(body));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(next, 'good GET /next');
  } finally {
    agent.destroy();
  }
});

test('a container that drops a bodyless GET gets it replayed elsewhere; a POST whose body went out is never retried', async () => {
  h.routes.set('flaky.localhost', hostRecord('flaky', [tricky.container, second.container], { balancer: 'round_robin' }));
  const trickyBefore = tricky.hits;
  const get = await request(h.port, 'flaky.localhost', { path: '/g' });
  assert.equal(get.status, 200);
  assert.equal(get.body, 'second GET /g');
  assert.equal(tricky.hits - trickyBefore, 1);

  // Round robin points at `tricky` again now.
  const secondBefore = second.hits;
  const post = await request(h.port, 'flaky.localhost', { path: '/p', method: 'POST', body: 'not idempotent', headers: { accept: 'application/json' } });
  assert.equal(post.status, 502);
  assert.equal(JSON.parse(post.body).code, 'UPSTREAM_ERROR');
  assert.equal(second.hits, secondBefore, 'the POST was not sent twice');
});

test('the container cutting the body mid-way cuts the client too (no silent truncation)', async () => {
  const outcome = await new Promise<string>((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: h.port, path: '/cut-body', headers: { host: 'app.localhost' }, agent: false }, (res) => {
      res.on('data', () => undefined);
      res.on('error', () => resolve('aborted'));
      res.on('end', () => resolve('ended'));
    });
    req.on('error', () => resolve('error'));
    req.end();
  });
  assert.equal(outcome, 'aborted');
  assert.equal(h.lines.find((l) => l.path === '/cut-body')?.code, 'UPSTREAM_ERROR');
  assert.ok(await until(() => h.router.stats().inflight === 0));
});

test('an early answer (413 before the body was read) reaches the client intact', async () => {
  const outcome = await new Promise<string>((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: h.port, path: '/too-large', method: 'POST', headers: { host: 'app.localhost', 'content-length': String(8 * 1024 * 1024) }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(`${res.statusCode} ${body}`));
      res.on('error', () => resolve(`${res.statusCode} aborted after ${JSON.stringify(body)}`));
    });
    req.on('error', (err) => resolve(`request error ${err.message}`));
    const chunk = Buffer.alloc(64 * 1024, 'u');
    let sent = 0;
    const pump = (): void => {
      while (sent < 8 * 1024 * 1024) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
  assert.equal(outcome, '413 too large');
  assert.ok(await until(() => h.router.stats().inflight === 0));
});

test('a keep-alive connection carries a POST and then a GET', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const sockets = new Set<unknown>();
  const send = (method: string, path: string, body?: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: h.port, method, path, headers: { host: 'app.localhost' }, agent }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve(text));
      });
      req.on('socket', (s) => sockets.add(s));
      req.on('error', reject);
      req.end(body);
    });
  try {
    assert.match(await send('POST', '/upload', 'some body'), /"bytes":9/);
    assert.equal(await send('GET', '/then'), 'good GET /then');
    assert.equal(sockets.size, 1, 'same client connection');
  } finally {
    agent.destroy();
  }
});
