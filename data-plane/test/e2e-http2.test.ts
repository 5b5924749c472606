/**
 * HTTP/2 on the HTTPS listener, end to end: the real control plane and router, real
 * node:http2 clients trusting the test CA, real HTTP/1.1 containers.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import http2, { type ClientHttp2Session } from 'node:http2';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { createTestCa, type TestCa } from '../../test-support/certs.js';
import { closeSession, h2Connect, h2Request, h2Response } from '../../test-support/h2.js';
import { FLAG, FRAME, frame, headerBlock, rawH2, rstStream } from '../../test-support/h2-frames.js';
import { eventually, startStack, startUpstream, type Stack, type Upstream } from '../../test-support/router.js';

let s: Stack;
let ca: TestCa;
let a: Upstream;
let b: Upstream;
let session: ClientHttp2Session;
const NAME = 'www.h2.test';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

before(async () => {
  s = await startStack('h2');
  ca = await createTestCa();
  a = await startUpstream('a');
  b = await startUpstream('b');
  assert.equal((await s.h.deploy('web', [a.container, b.container])).status, 200);
  assert.equal((await s.h.send({ app: 'web', type: 'domains', domains: [NAME] })).status, 200);
  const cert = await ca.issue({ sans: [NAME] });
  assert.equal((await s.h.send({ app: 'web', type: 'certificate', certificate: { domain: NAME, cert: cert.chainPem, key: cert.keyPem } })).status, 200);
  session = await h2Connect(s.router.httpsPort, { servername: NAME, ca: ca.certPem });
});

after(async () => {
  session.destroy();
  await s.close();
  await Promise.all([a.close(), b.close()]);
});

function metric(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

/** An app of its own with one container, reachable as <app>.localhost (the default certificate: `insecure` sessions). */
async function deployOne(app: string, handler: http.RequestListener, settings: Record<string, unknown> = {}): Promise<Upstream> {
  const up = await startUpstream(app, handler);
  assert.equal((await s.h.deploy(app, [up.container], Object.keys(settings).length > 0 ? { settings } : {})).status, 200);
  return up;
}

async function insecureSession(): Promise<ClientHttp2Session> {
  return h2Connect(s.router.httpsPort, { insecure: true });
}

test('many concurrent streams on one session reach both containers, verified against the CA, logged as h2', async () => {
  assert.equal(session.alpnProtocol, 'h2');
  const before = metric(await s.router.metrics.registry.metrics(), 'router_requests_by_protocol_total', '{protocol="h2"}');
  const hitsBefore = a.hits + b.hits;
  const replies = await Promise.all(Array.from({ length: 64 }, (_, i) => h2Request(session, { ':path': `/r/${i}` })));
  const served = new Map<string, number>();
  for (const [i, reply] of replies.entries()) {
    assert.equal(reply.status, 200);
    const [who, method, path] = reply.text.split(' ');
    assert.equal(method, 'GET');
    assert.equal(path, `/r/${i}`);
    served.set(who!, (served.get(who!) ?? 0) + 1);
  }
  assert.equal(a.hits + b.hits - hitsBefore, 64);
  assert.ok((served.get('a') ?? 0) > 0 && (served.get('b') ?? 0) > 0, `both containers served: ${JSON.stringify([...served])}`);
  const lines = s.accessLines.filter((l) => l.path.startsWith('/r/'));
  assert.equal(lines.length, 64);
  for (const line of lines) {
    assert.equal(line.protocol, 'h2');
    assert.equal(line.app, 'web');
    assert.equal(line.host, NAME);
    assert.equal(line.code, '-');
    assert.equal(line.status, 200);
  }
  const text = await s.router.metrics.registry.metrics();
  assert.equal(metric(text, 'router_requests_by_protocol_total', '{protocol="h2"}') - before, 64);
  assert.ok(metric(text, 'router_tls_alpn_total', '{protocol="h2"}') >= 1);
  assert.equal(metric(text, 'router_h2_sessions_open'), 1, 'every stream went over the one session');
});

test('a 20 MB upload streams through with its bytes intact, and a 20 MB download too', async () => {
  const SIZE = 20 * 1024 * 1024;
  const up = await deployOne('bulk', (req, res) => {
    if (req.method === 'POST') {
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (c: Buffer) => {
        bytes += c.length;
        hash.update(c);
      });
      req.on('end', () => res.end(JSON.stringify({ bytes, sha256: hash.digest('hex'), te: req.headers['transfer-encoding'] ?? null })));
      return;
    }
    // Download: 20 MB in 64 KiB chunks, written with backpressure.
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(SIZE) });
    let sent = 0;
    const pump = (): void => {
      while (sent < SIZE) {
        const chunk = chunkAt(sent);
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  });
  const h2 = await insecureSession();
  try {
    // Upload, written as the stream accepts it (never buffered whole on the client either).
    const stream = h2.request({ ':method': 'POST', ':path': '/upload', ':authority': 'bulk.localhost', 'content-type': 'application/octet-stream' }, { endStream: false });
    const reply = h2Response(stream);
    const hash = createHash('sha256');
    let written = 0;
    while (written < SIZE) {
      const chunk = chunkAt(written);
      written += chunk.length;
      hash.update(chunk);
      if (!stream.write(chunk)) await new Promise((r) => stream.once('drain', r));
    }
    stream.end();
    const got = await reply;
    assert.equal(got.status, 200);
    assert.deepEqual(JSON.parse(got.text), { bytes: SIZE, sha256: hash.digest('hex'), te: 'chunked' });

    const down = h2.request({ ':path': '/download', ':authority': 'bulk.localhost' });
    const downHash = createHash('sha256');
    let bytes = 0;
    const status = await new Promise<number>((resolve, reject) => {
      let code = 0;
      down.on('response', (h) => (code = Number(h[':status'])));
      down.on('data', (c: Buffer) => {
        bytes += c.length;
        downHash.update(c);
      });
      down.on('end', () => resolve(code));
      down.on('error', reject);
    });
    assert.equal(status, 200);
    assert.equal(bytes, SIZE);
    const expected = createHash('sha256');
    for (let at = 0; at < SIZE; ) {
      const chunk = chunkAt(at);
      at += chunk.length;
      expected.update(chunk);
    }
    assert.equal(downHash.digest('hex'), expected.digest('hex'));
    const lines = s.accessLines.filter((l) => l.app === 'bulk');
    assert.deepEqual(lines.map((l) => [l.method, l.bytes_in, l.protocol]), [
      ['POST', SIZE, 'h2'],
      ['GET', 0, 'h2'],
    ]);
    assert.equal(lines[1]!.bytes_out, SIZE);
  } finally {
    h2.destroy();
    await up.close();
  }
});

/** 64 KiB of bytes that depend on their offset, so a lost, doubled or reordered chunk changes the hash. */
function chunkAt(offset: number): Buffer {
  const chunk = Buffer.alloc(64 * 1024);
  chunk.writeUInt32BE(offset, 0);
  for (let i = 4; i < chunk.length; i += 4) chunk.writeUInt32BE((offset + i) * 2654435761 >>> 0, i);
  return chunk;
}

test('request headers: Host from :authority, X-Forwarded-*, Via 2, cookies joined; no pseudo-header reaches the container', async () => {
  const up = await deployOne('echo', (req, res) => res.end(JSON.stringify({ headers: req.headers, raw: req.rawHeaders, version: req.httpVersion })));
  const h2 = await insecureSession();
  try {
    const reply = await h2Request(h2, {
      ':path': '/e?q=1',
      ':authority': 'Echo.localhost:8443',
      cookie: ['a=1', 'b=2', 'c=3'],
      'x-forwarded-for': '203.0.113.7',
      'x-forwarded-proto': 'http',
      te: 'trailers',
      via: '1.1 edge',
    });
    assert.equal(reply.status, 200);
    const seen = JSON.parse(reply.text) as { headers: Record<string, string>; raw: string[]; version: string };
    assert.equal(seen.version, '1.1', 'containers get HTTP/1.1');
    assert.equal(seen.headers['host'], 'Echo.localhost:8443', 'Host is :authority as sent');
    assert.equal(seen.headers['cookie'], 'a=1; b=2; c=3');
    assert.equal(seen.raw.filter((n, i) => i % 2 === 0 && n.toLowerCase() === 'cookie').length, 1, 'one Cookie line');
    assert.equal(seen.headers['x-forwarded-for'], '203.0.113.7, 127.0.0.1');
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.equal(seen.headers['x-forwarded-port'], String(s.router.httpsPort));
    assert.equal(seen.headers['via'], '1.1 edge, 2 platform-router');
    assert.equal(seen.headers['te'], undefined);
    assert.match(seen.headers['x-request-id'] ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(reply.headers['x-request-id'], seen.headers['x-request-id']);
    assert.ok(!seen.raw.some((v, i) => i % 2 === 0 && v.startsWith(':')), `no pseudo-header upstream: ${seen.raw.join(' ')}`);
    assert.equal(reply.headers['via'], '1.1 platform-router', 'the response came from the container over HTTP/1.1');

    // A Host header naming another authority than :authority is ambiguous: 400, and nothing reaches the app.
    const hits = up.hits;
    const ambiguous = await h2Request(h2, { ':path': '/', ':authority': 'echo.localhost', host: 'other.localhost', accept: 'application/json' });
    assert.equal(ambiguous.status, 400);
    assert.equal(JSON.parse(ambiguous.text).code, 'BAD_HOST');
    const same = await h2Request(h2, { ':path': '/', ':authority': 'echo.localhost', host: 'ECHO.localhost' });
    assert.equal(same.status, 200, 'the same authority twice is one Host');
    assert.equal(up.hits, hits + 1);
  } finally {
    h2.destroy();
    await up.close();
  }
});

test('connection-specific response headers are stripped; repeated ones joined, Set-Cookie kept apart', async () => {
  const up = await deployOne('hop', (_req, res) => {
    res.writeHead(200, [
      'Connection', 'keep-alive, X-Hop',
      'Keep-Alive', 'timeout=5',
      'Transfer-Encoding', 'chunked',
      'Proxy-Connection', 'keep-alive',
      'HTTP2-Settings', 'AAMAAABkAARAAAAAAAIAAAAA',
      'X-Hop', 'must not reach the client',
      'Set-Cookie', 'a=1',
      'Set-Cookie', 'b=2',
      'X-Dup', '1',
      'x-dup', '2',
      'Content-Type', 'text/plain',
    ]);
    res.write('chunk one, ');
    res.end('chunk two');
  });
  const h2 = await insecureSession();
  try {
    const reply = await h2Request(h2, { ':path': '/', ':authority': 'hop.localhost' });
    assert.equal(reply.status, 200);
    assert.equal(reply.text, 'chunk one, chunk two');
    for (const name of ['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'http2-settings', 'x-hop', 'upgrade']) {
      assert.equal(reply.headers[name], undefined, `${name} reached the client`);
    }
    assert.deepEqual(reply.headers['set-cookie'], ['a=1', 'b=2']);
    assert.equal(reply.headers['x-dup'], '1, 2');
    assert.equal(reply.headers['content-type'], 'text/plain');
    // The session survived: the stream was not killed by a protocol error.
    assert.equal((await h2Request(h2, { ':path': '/again', ':authority': 'hop.localhost' })).status, 200);
  } finally {
    h2.destroy();
    await up.close();
  }
});

test('the router\'s own answers over h2: 404 unknown host, 502 refused container, 400 bad host, HEAD without body', async () => {
  const dead = net.createServer();
  await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
  const deadPort = (dead.address() as AddressInfo).port;
  await new Promise<void>((r) => dead.close(() => r()));
  assert.equal((await s.h.deploy('gone', [{ id: 'dead', host: '127.0.0.1', port: deadPort }])).status, 200);
  const h2 = await insecureSession();
  try {
    const unknown = await h2Request(h2, { ':path': '/x', ':authority': 'nobody.localhost', accept: 'application/json' });
    assert.equal(unknown.status, 404);
    assert.equal(JSON.parse(unknown.text).code, 'UNKNOWN_HOST');
    assert.equal(unknown.headers['content-length'], String(unknown.body.length));
    assert.match(unknown.headers['x-request-id'] as string, /^[0-9a-f-]{36}$/);
    assert.equal(unknown.headers['connection'], undefined);

    const refused = await h2Request(h2, { ':path': '/', ':authority': 'gone.localhost' });
    assert.equal(refused.status, 502);
    assert.match(refused.headers['content-type'] as string, /^text\/html/);
    assert.match(refused.text, /UPSTREAM_REFUSED/);

    const bad = await h2Request(h2, { ':path': '/', ':authority': 'bad_host!' });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /BAD_HOST/);

    const head = await h2Request(h2, { ':method': 'HEAD', ':path': '/', ':authority': 'nobody.localhost' });
    assert.equal(head.status, 404);
    assert.equal(head.body.length, 0);

    const post = await h2Request(h2, { ':method': 'POST', ':path': '/', ':authority': 'nobody.localhost' }, Buffer.alloc(200_000, 1));
    assert.equal(post.status, 404, 'an unread upload does not keep the answer back');

    const codes = s.accessLines.filter((l) => ['nobody.localhost', 'gone.localhost', 'bad_host!'].includes(l.host)).map((l) => `${l.code} ${l.status} ${l.protocol}`);
    assert.deepEqual(codes, ['UNKNOWN_HOST 404 h2', 'UPSTREAM_REFUSED 502 h2', 'BAD_HOST 400 h2', 'UNKNOWN_HOST 404 h2', 'UNKNOWN_HOST 404 h2']);
    assert.equal((await h2Request(h2, { ':path': '/', ':authority': 'web.localhost' })).status, 200, 'the session still serves');
  } finally {
    h2.destroy();
  }
});

test('a stream reset mid-upload aborts the upstream request, and nothing stays in flight', async () => {
  let received = 0;
  let upstreamAborted: () => void = () => undefined;
  const aborted = new Promise<void>((resolve) => (upstreamAborted = resolve));
  const up = await deployOne('reset', (req, res) => {
    req.on('data', (c: Buffer) => (received += c.length));
    req.on('close', () => {
      if (!req.complete) upstreamAborted();
    });
    req.on('end', () => res.end('complete?'));
  });
  // Raw frames: node:http2's close() would send END_STREAM before its RST_STREAM, declaring the body whole.
  const raw = await rawH2(s.router.httpsPort);
  try {
    const head = headerBlock([[':method', 'POST'], [':scheme', 'https'], [':path', '/up'], [':authority', 'reset.localhost']]);
    raw.write(Buffer.concat([frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, head), frame(FRAME.DATA, 0, 1, Buffer.alloc(16 * 1024, 7))]));
    await eventually(async () => received > 0, 5000, 5);
    raw.write(rstStream(1));
    await aborted;
    await eventually(async () => s.router.httpsServer.stats().inflight === 0, 5000, 5);
    await eventually(async () => s.accessLines.some((l) => l.app === 'reset'), 5000, 5);
    const line = s.accessLines.find((l) => l.app === 'reset')!;
    assert.equal(line.code, 'CLIENT_ABORTED');
    assert.equal(line.status, 499);
    assert.equal(line.protocol, 'h2');
    assert.equal(received, 16 * 1024);
    assert.equal(up.hits, 1);
    assert.equal(raw.frames.filter((f) => f.type === FRAME.GOAWAY).length, 0, 'a reset costs the stream, not the connection');
  } finally {
    raw.socket.destroy();
    await up.close();
  }
});

test('HSTS on h2 answers of an app with hsts_max_age', async () => {
  const up = await deployOne('strict', (_req, res) => res.end('ok'), { hsts_max_age: 300 });
  const h2 = await insecureSession();
  try {
    const reply = await h2Request(h2, { ':path': '/', ':authority': 'strict.localhost' });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['strict-transport-security'], 'max-age=300');
  } finally {
    h2.destroy();
    await up.close();
  }
});

test('ALPN: h2 preferred, http/1.1 for clients offering only it, HTTP/1.1 for clients offering none', async () => {
  const alpnOf = (ALPNProtocols: string[] | undefined): Promise<string | false> =>
    new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: s.router.httpsPort, servername: NAME, ca: [ca.certPem], ...(ALPNProtocols === undefined ? {} : { ALPNProtocols }) }, () => {
        const chosen = socket.alpnProtocol ?? false;
        socket.end();
        socket.once('close', () => resolve(chosen));
      });
      socket.resume();
      socket.once('error', reject);
    });
  assert.equal(await alpnOf(['http/1.1', 'h2']), 'h2');
  assert.equal(await alpnOf(['http/1.1']), 'http/1.1');
  assert.equal(await alpnOf(undefined), false);

  // node:https offers no ALPN: served as HTTP/1.1, exactly as before.
  const reply = await new Promise<{ status: number; version: string; body: string }>((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: s.router.httpsPort, path: '/h1', headers: { host: NAME }, servername: NAME, ca: [ca.certPem], agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, version: res.httpVersion, body }));
    });
    req.on('error', reject);
    req.end();
  });
  assert.deepEqual(reply, { status: 200, version: '1.1', body: reply.body });
  assert.match(reply.body, /^[ab] GET \/h1$/);
  assert.equal(s.accessLines.find((l) => l.path === '/h1')?.protocol, 'http/1.1');

  // An HTTP/1.1 request on a connection that chose http/1.1 by ALPN.
  const raw = await new Promise<string>((resolve, reject) => {
    let data = '';
    const socket = tls.connect({ host: '127.0.0.1', port: s.router.httpsPort, servername: NAME, ca: [ca.certPem], ALPNProtocols: ['http/1.1'] }, () => {
      socket.write(`GET /alpn-h1 HTTP/1.1\r\nHost: ${NAME}\r\nConnection: close\r\n\r\n`);
    });
    socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
    socket.on('close', () => resolve(data));
    socket.on('error', reject);
  });
  assert.match(raw, /^HTTP\/1\.1 200 /);
  const text = await s.router.metrics.registry.metrics();
  assert.ok(metric(text, 'router_tls_alpn_total', '{protocol="http/1.1"}') >= 2);
  assert.ok(metric(text, 'router_tls_alpn_total', '{protocol="none"}') >= 2);
});

test('the session is told SETTINGS_MAX_CONCURRENT_STREAMS and no extended CONNECT', async () => {
  const h2 = http2.connect(`https://127.0.0.1:${s.router.httpsPort}`, { rejectUnauthorized: false });
  h2.on('error', () => undefined);
  try {
    const settings = await new Promise<http2.Settings>((resolve) => h2.once('remoteSettings', resolve));
    assert.equal(settings.maxConcurrentStreams, 128);
    assert.equal(settings.maxHeaderListSize, http.maxHeaderSize);
    assert.notEqual(settings.enableConnectProtocol, true);
  } finally {
    await closeSession(h2);
  }
});

test('HTTP/1.1 on the same port keeps its keep-alive connections while h2 sessions come and go', async () => {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const get = (): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = https.request({ host: '127.0.0.1', port: s.router.httpsPort, path: '/', headers: { host: NAME }, servername: NAME, ca: [ca.certPem], agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end();
      });
    assert.equal(await get(), 200);
    for (let i = 0; i < 3; i++) {
      const h2 = await insecureSession();
      assert.equal((await h2Request(h2, { ':path': '/', ':authority': 'web.localhost' })).status, 200);
      await closeSession(h2);
    }
    await sleep(10);
    assert.equal(await get(), 200);
    const sockets = Object.values(agent.freeSockets).flat();
    assert.equal(sockets.length, 1, 'the one keep-alive connection was reused');
  } finally {
    agent.destroy();
  }
});
