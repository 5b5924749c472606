import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { selfSigned } from '../../test-support/certs.js';
import { Client } from 'undici';
import { countingHandler, hostRecord, startRouter, startUpstream, until, type Harness, type Upstream } from './proxy-harness.test.js';

let h: Harness;
let up: Upstream;
/** Every request target the container received, in order. */
const seen: string[] = [];

before(async () => {
  up = await startUpstream(
    'c1',
    countingHandler('c1', (req, res) => {
      seen.push(req.url ?? '');
      if (req.url === '/chunked') {
        // No Content-Length: node:http sends it chunked, the router must frame it again for its client.
        res.write('a');
        setTimeout(() => {
          res.write('bb');
          res.end('ccc');
        }, 5);
        return true;
      }
      if (req.url === '/empty') {
        res.statusCode = 204;
        res.end();
        return true;
      }
      return false;
    }),
  );
  h = await startRouter({ ROUTER_HEADERS_TIMEOUT: '1000', ROUTER_KEEPALIVE_TIMEOUT: '3000' });
  h.routes.set('app.localhost', hostRecord('app', [up.container]));
});
after(async () => {
  await h.close();
  await up.close();
});

async function handovers(reason?: string): Promise<number> {
  const metric = await h.metrics.http1Handovers.get();
  return metric.values.filter((v) => reason === undefined || v.labels.reason === reason).reduce((sum, v) => sum + v.value, 0);
}

/** A raw connection reading responses one at a time: each is complete when `done(text)` says so. */
class Conn {
  readonly socket: net.Socket;
  private data = '';
  closed = false;

  constructor(port: number, socket?: net.Socket) {
    this.socket = socket ?? net.connect(port, '127.0.0.1');
    this.socket.on('data', (c: Buffer) => (this.data += c.toString('latin1')));
    this.socket.on('close', () => (this.closed = true));
    this.socket.on('error', () => undefined);
  }

  async exchange(raw: string, done: (text: string) => boolean): Promise<string> {
    this.data = '';
    this.socket.write(raw);
    assert.ok(await until(() => done(this.data) || this.closed, 3000), `no complete answer to ${JSON.stringify(raw.slice(0, 40))}: ${JSON.stringify(this.data)}`);
    return this.data;
  }
}

test('keep-alive requests on one connection are served by the router\'s HTTP/1.1 path, with node:http\'s response framing', async () => {
  const before = await handovers();
  const conn = new Conn(h.port);
  for (let i = 0; i < 3; i++) {
    const text = await conn.exchange(`GET /n${i} HTTP/1.1\r\nHost: app.localhost\r\n\r\n`, (t) => t.endsWith(`c1 GET /n${i} 0`));
    const [head] = text.split('\r\n\r\n');
    assert.match(head!, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(head!, /\r\ncontent-length: \d+/i);
    assert.match(head!, /\r\ndate: \w{3}, \d\d \w{3} \d{4} /i);
    // The router's own lines (node:http writes `Connection: keep-alive`, capitalised).
    assert.match(head!, /\r\nconnection: keep-alive\r\nkeep-alive: timeout=3(\r\n|$)/);
    assert.match(head!, /\r\nx-request-id: [A-Za-z0-9+/=-]{20,200}\r\n/);
    assert.match(head!, /\r\nvia: 1\.1 platform-router\r\n/);
    assert.doesNotMatch(head!, /transfer-encoding/i);
  }
  assert.equal(conn.closed, false);
  conn.socket.destroy();
  assert.equal(await handovers(), before, 'no connection went to node:http');
  assert.equal(h.lines.filter((l) => l.path.startsWith('/n') && l.status === 200 && l.protocol === 'http/1.1').length, 3);
});

test('pipelined HEAD, re-chunked, 204 and plain answers come back in order and correctly framed on one connection', async () => {
  const before = await handovers();
  const client = new Client(`http://127.0.0.1:${h.port}`, { pipelining: 4 });
  try {
    const ask = async (method: 'GET' | 'HEAD', path: string): Promise<[number, string, http.IncomingHttpHeaders]> => {
      const res = await client.request({ method, path, headers: { host: 'app.localhost' } });
      return [res.statusCode, await res.body.text(), res.headers as http.IncomingHttpHeaders];
    };
    const [head, chunked, empty, plain] = await Promise.all([ask('HEAD', '/h'), ask('GET', '/chunked'), ask('GET', '/empty'), ask('GET', '/p')]);
    assert.equal(head[0], 200);
    assert.equal(head[1], '');
    assert.deepEqual(chunked.slice(0, 2), [200, 'abbccc']);
    assert.equal(chunked[2]['transfer-encoding'], 'chunked');
    assert.deepEqual(empty.slice(0, 2), [204, '']);
    assert.deepEqual(plain.slice(0, 2), [200, 'c1 GET /p 0']);
    assert.equal(await handovers(), before, 'served by the router\'s own path');
  } finally {
    await client.close();
  }
});

test('a connection goes to node:http at the first request with a body, and keeps working there', async () => {
  const bodyBefore = await handovers('body');
  const conn = new Conn(h.port);
  await conn.exchange('GET /first HTTP/1.1\r\nHost: app.localhost\r\n\r\n', (t) => t.endsWith('c1 GET /first 0'));
  const post = await conn.exchange('POST /upload HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 5\r\n\r\nhello', (t) => t.endsWith('c1 POST /upload 5'));
  assert.match(post, /^HTTP\/1\.1 200 OK\r\n/);
  const chunkedUpload = await conn.exchange('PUT /c HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n', (t) => t.endsWith('c1 PUT /c 3'));
  assert.match(chunkedUpload, /^HTTP\/1\.1 200 OK\r\n/);
  await conn.exchange('GET /after HTTP/1.1\r\nHost: app.localhost\r\n\r\n', (t) => t.endsWith('c1 GET /after 0'));
  assert.equal(conn.closed, false);
  conn.socket.destroy();
  assert.equal(await handovers('body'), bodyBefore + 1, 'handed over once, at the POST');
});

test('Expect: 100-continue and HTTP/1.0 go to node:http, which answers them as before', async () => {
  const expectBefore = await handovers('expect');
  const versionBefore = await handovers('version');
  const conn = new Conn(h.port);
  const cont = await conn.exchange('POST /e HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n', (t) => t.includes('100 Continue'));
  assert.match(cont, /^HTTP\/1\.1 100 Continue\r\n/);
  const answer = await conn.exchange('ok', (t) => t.endsWith('c1 POST /e 2'));
  assert.match(answer, /HTTP\/1\.1 200 OK/);
  conn.socket.destroy();
  const old = await new Conn(h.port).exchange('GET /ten HTTP/1.0\r\nHost: app.localhost\r\n\r\n', (t) => t.endsWith('c1 GET /ten 0'));
  assert.match(old, /^HTTP\/1\.1 200 OK\r\n/);
  assert.equal(await handovers('expect'), expectBefore + 1);
  assert.equal(await handovers('version'), versionBefore + 1);
});

test('a malformed request after a good one is answered 400 by node:http, with the router\'s page', async () => {
  const before = await handovers('malformed');
  const conn = new Conn(h.port);
  await conn.exchange('GET /ok HTTP/1.1\r\nHost: app.localhost\r\n\r\n', (t) => t.endsWith('c1 GET /ok 0'));
  const bad = await conn.exchange('GET /x HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', () => false);
  assert.match(bad, /^HTTP\/1\.1 400 /);
  assert.match(bad, /BAD_REQUEST/);
  assert.ok(conn.closed);
  assert.equal(await handovers('malformed'), before + 1);
  assert.equal(up.hits > 0, true);
});

test('a client that half-closes after its request still gets the whole response', async () => {
  const text = await new Promise<string>((resolve) => {
    let data = '';
    const socket = net.connect(h.port, '127.0.0.1', () => socket.end('GET /fin HTTP/1.1\r\nHost: app.localhost\r\n\r\n'));
    socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(data));
  });
  assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
  assert.ok(text.endsWith('c1 GET /fin 0'));
});

test('Connection: close from the client: answered with Connection: close, then closed', async () => {
  const conn = new Conn(h.port);
  const text = await conn.exchange('GET /bye HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n', () => false);
  assert.ok(conn.closed);
  assert.match(text, /\r\nconnection: close\r\n/i);
  assert.doesNotMatch(text, /keep-alive/i);
  assert.ok(text.endsWith('c1 GET /bye 0'));
});

test('1 500 requests pipelined in one write (past the held-bytes bound) are all answered, in order', async () => {
  const n = 1500;
  let raw = '';
  for (let i = 0; i < n; i++) raw += `GET /p${i} HTTP/1.1\r\nHost: app.localhost\r\nX-Pad: ${'p'.repeat(20)}\r\n\r\n`;
  assert.ok(raw.length > 64 * 1024);
  const conn = new Conn(h.port);
  const text = await conn.exchange(raw, (t) => t.endsWith(`c1 GET /p${n - 1} 0`));
  const bodies = [...text.matchAll(/c1 GET \/p(\d+) 0/g)].map((m) => Number(m[1]));
  assert.equal(bodies.length, n);
  assert.ok(bodies.every((v, i) => v === i), 'in order');
  conn.socket.destroy();
});

test('ROUTER_HTTP1_FAST_PATH=false: node:http serves every request', async () => {
  const plain = await startRouter({ ROUTER_HTTP1_FAST_PATH: 'false' });
  try {
    plain.routes.set('app.localhost', hostRecord('app', [up.container]));
    assert.ok(plain.router.server instanceof http.Server);
    assert.ok(!(h.router.server instanceof http.Server), 'the default listener is the fast path\'s net.Server');
    const text = await new Conn(plain.port).exchange('GET /node HTTP/1.1\r\nHost: app.localhost\r\n\r\n', (t) => t.endsWith('c1 GET /node 0'));
    // node:http's own casing.
    assert.match(text, /\r\nConnection: keep-alive\r\nKeep-Alive: timeout=75\r\n/);
  } finally {
    await plain.close();
  }
});

test('a Content-Length after many header lines is seen: handed over, the body never parsed as a request', async () => {
  for (const lines of [40, 2050]) {
    const reason = 'body';
    const before = await handovers(reason);
    const smuggled = 'GET /smuggled HTTP/1.1\r\nHost: app.localhost\r\n\r\n';
    const head = `POST /front HTTP/1.1\r\nHost: app.localhost\r\n${'a: b\r\n'.repeat(lines)}Content-Length: ${smuggled.length}\r\n\r\n`;
    const conn = new Conn(h.port);
    const text = await conn.exchange(head + smuggled, (t) => t.includes(`c1 POST /front ${smuggled.length}`));
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal((text.match(/HTTP\/1\.1 /g) ?? []).length, 1, `${lines} lines: one request, one answer`);
    assert.ok(!seen.includes('/smuggled'), `${lines} lines: the body reached nobody as a request`);
    assert.equal(await handovers(reason), before + 1, `${lines} lines: handed over as ${reason}`);
    conn.socket.destroy();
  }
});

test('a POST pipelined behind a served GET in one write is handed over from its first byte', async () => {
  const conn = new Conn(h.port);
  const body = 'GET /inside HTTP/1.1\r\nHost: app.localhost\r\n\r\n';
  const text = await conn.exchange(
    `GET /a HTTP/1.1\r\nHost: app.localhost\r\n\r\nPOST /b HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: ${body.length}\r\n\r\n${body}GET /c HTTP/1.1\r\nHost: app.localhost\r\n\r\n`,
    (t) => t.endsWith('c1 GET /c 0'),
  );
  assert.deepEqual([...text.matchAll(/c1 (\w+ \/\w+ \d+)/g)].map((m) => m[1]), ['GET /a 0', `POST /b ${body.length}`, 'GET /c 0']);
  assert.ok(!seen.includes('/inside'));
  conn.socket.destroy();
});

test('a head split across packets, then handed over, reaches node:http whole', async () => {
  const conn = new Conn(h.port);
  const parts = ['PO', 'ST /split HTTP/1.1\r\nHo', 'st: app.localhost\r\nContent-Le', 'ngth: 4\r\n\r\nab', 'cd'];
  for (const part of parts.slice(0, -1)) {
    conn.socket.write(part);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const text = await conn.exchange(parts.at(-1)!, (t) => t.endsWith('c1 POST /split 4'));
  assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
  conn.socket.destroy();
});

test('a client pipelining without reading: the router stops reading (no unbounded buffering), and answers the rest once it reads', async () => {
  // The router's own 404 pages: each answer is complete at once, with no container to wait for.
  const n = 20_000;
  const request = 'GET /flood HTTP/1.1\r\nHost: nobody.localhost\r\n\r\n';
  const answered = (): number => h.lines.filter((l) => l.path === '/flood').length;
  const socket = net.connect(h.port, '127.0.0.1');
  socket.on('error', () => undefined);
  socket.pause();
  socket.write(request.repeat(n));
  // Until the count stops moving: the socket's buffers are full and the router waits.
  let last = -1;
  const deadline = Date.now() + 8000;
  while (answered() !== last && Date.now() < deadline) {
    last = answered();
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  assert.ok(answered() < n / 2, `only what fits in the buffers is answered while the client reads nothing (${answered()} of ${n})`);
  let responses = 0;
  let tail = '';
  socket.on('data', (c: Buffer) => {
    const text = tail + c.toString('latin1');
    responses += (text.match(/HTTP\/1\.1 404 /g) ?? []).length;
    // One byte short of a whole match: a match is counted once, in the chunk it ends in.
    tail = text.slice(-('HTTP/1.1 404 '.length - 1));
  });
  socket.resume();
  assert.ok(await until(() => responses === n, 20_000), `all ${n} answered once read (got ${responses})`);
  socket.destroy();
});

test('HTTPS: HTTP/1.1 connections (ALPN) take the same path, and hand over the same way', async () => {
  const cert = await selfSigned({ sans: ['app.localhost'] });
  const secure = await startRouter({}, { tls: { key: cert.keyPem, cert: cert.certPem, minVersion: 'TLSv1.2' } });
  try {
    secure.routes.set('app.localhost', hostRecord('app', [up.container]));
    const handed = async (): Promise<number> => (await secure.metrics.http1Handovers.get()).values.reduce((sum, v) => sum + v.value, 0);
    const socket = tls.connect({ port: secure.port, host: '127.0.0.1', servername: 'app.localhost', ALPNProtocols: ['http/1.1'], ca: cert.certPem });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    assert.equal(socket.alpnProtocol, 'http/1.1');
    const conn = new Conn(0, socket);
    for (const path of ['/s1', '/s2']) {
      const text = await conn.exchange(`GET ${path} HTTP/1.1\r\nHost: app.localhost\r\n\r\n`, (t) => t.endsWith(`c1 GET ${path} 0`));
      assert.match(text, /\r\nconnection: keep-alive\r\nkeep-alive: timeout=75\r\n/);
    }
    assert.equal(await handed(), 0, 'served by the router\'s own path');
    const post = await conn.exchange('POST /up HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 3\r\n\r\nabc', (t) => t.endsWith('c1 POST /up 3'));
    assert.match(post, /^HTTP\/1\.1 200 OK\r\n/);
    assert.equal(await handed(), 1);
    await conn.exchange('GET /s3 HTTP/1.1\r\nHost: app.localhost\r\n\r\n', (t) => t.endsWith('c1 GET /s3 0'));
    socket.destroy();
  } finally {
    await secure.close();
  }
});

test('a container answer with a control byte in a header value or the status text: 502 on both paths, never relayed', async () => {
  const answers = ['HTTP/1.1 200 OK\r\nX-Bad: a\x01b\r\nContent-Length: 2\r\n\r\nok', 'HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok'];
  const containers = await Promise.all(
    answers.map(async (answer) => {
      // Raw containers: node:http would refuse to send such a head itself.
      const server = net.createServer((socket) => {
        socket.on('error', () => undefined);
        socket.once('data', () => socket.end(answer));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return server;
    }),
  );
  const nodePath = await startRouter({ ROUTER_HTTP1_FAST_PATH: 'false' });
  try {
    for (const router of [h, nodePath]) {
      for (const [i, server] of containers.entries()) {
        router.routes.set('bad.localhost', hostRecord('bad', [{ id: `raw${i}`, host: '127.0.0.1', port: (server.address() as net.AddressInfo).port }]));
        const conn = new Conn(router.port);
        const text = await conn.exchange('GET /x HTTP/1.1\r\nHost: bad.localhost\r\n\r\n', (t) => t.endsWith('</html>\n'));
        const which = `${router === h ? 'fast path' : 'node:http'}, answer ${i}`;
        assert.match(text, /^HTTP\/1\.1 502 Bad Gateway\r\n/, which);
        assert.doesNotMatch(text, /\x01|X-Bad/i, which);
        conn.socket.destroy();
      }
    }
  } finally {
    await nodePath.close();
    for (const server of containers) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('a client whose answers wait unread for ROUTER_IDLE_TIMEOUT is disconnected', async () => {
  const short = await startRouter({ ROUTER_IDLE_TIMEOUT: '500' });
  try {
    const socket = net.connect(short.port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.pause();
    socket.write('GET /flood HTTP/1.1\r\nHost: nobody.localhost\r\n\r\n'.repeat(20_000));
    assert.ok(await until(() => short.lines.length > 100, 5000), 'answers started');
    // Seen from the router's side: a paused client only learns of the reset when it reads.
    let open = 1;
    const count = (): void => void short.router.server.getConnections((_err, n) => (open = n));
    assert.ok(await until(() => (count(), open === 0), 8000), 'cut once nothing moved for the idle timeout');
    socket.destroy();
    assert.ok(short.lines.length < 20_000, 'not everything was answered: the client read nothing');
  } finally {
    await short.close();
  }
});
