/**
 * The HTTPS listener's HTTP/2 side against a stub route table: drain and close with streams
 * in flight, the session timeouts, abuse (rapid reset, CONNECT, oversized heads), and the
 * edges of proxying a stream (cut responses, early answers, 100-continue).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type http from 'node:http';
import http2 from 'node:http2';
import tls from 'node:tls';
import { selfSigned, type TestCert } from '../../test-support/certs.js';
import { closeSession, h2Connect, h2Request, h2Response } from '../../test-support/h2.js';
import { CANCEL, FLAG, FRAME, frame, headerBlock, rawH2, rstStream } from '../../test-support/h2-frames.js';
import { hostRecord, startRouter, startUpstream, until, type Harness, type Upstream } from './proxy-harness.test.js';

let cert: TestCert;
let up: Upstream;
const held: http.ServerResponse[] = [];

before(async () => {
  cert = await selfSigned({ sans: ['app.localhost'] });
  up = await startUpstream('c1', (req, res) => {
    if (req.url === '/hold') return void held.push(res);
    if (req.url === '/cut') {
      // Chunked: only the reset tells the client the body is not whole.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write(Buffer.alloc(1000, 1));
      setTimeout(() => res.socket?.destroy(), 20);
      return;
    }
    if (req.url === '/early') {
      // Answers without reading the upload.
      res.writeHead(413, { 'content-type': 'text/plain' });
      return void res.end('too big');
    }
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => res.end(`c1 ${req.method} ${req.url} ${bytes}`));
  });
});
after(async () => {
  for (const res of held.splice(0)) res.destroy();
  await up.close();
});

async function tlsRouter(env: Record<string, string> = {}): Promise<Harness> {
  const h = await startRouter(env, { tls: { key: cert.keyPem, cert: cert.certPem, minVersion: 'TLSv1.2' } });
  h.routes.set('app.localhost', hostRecord('app', [up.container]));
  return h;
}

const connect = (h: Harness): Promise<http2.ClientHttp2Session> => h2Connect(h.port, { insecure: true });
const get = (session: http2.ClientHttp2Session, path: string, headers: http2.OutgoingHttpHeaders = {}) =>
  h2Request(session, { ':path': path, ':authority': 'app.localhost', accept: 'application/json', ...headers });

test('drain: GOAWAY, no new stream on the session, the stream in flight finishes, then it resolves', async () => {
  const h = await tlsRouter();
  try {
    const session = await connect(h);
    const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
    const inflight = get(session, '/hold');
    assert.ok(await until(() => held.length === 1));
    let drained = false;
    const draining = h.router.drain(5000).then(() => (drained = true));
    await goaway;
    await assert.rejects(async () => get(session, '/after-goaway'), /GOAWAY/, 'the client knows: no new stream on this session');
    assert.equal(drained, false, 'waits for the stream in flight');
    held.shift()!.end('done');
    const res = await inflight;
    assert.equal(res.status, 200);
    assert.equal(res.text, 'done');
    assert.equal(res.headers['connection'], undefined, 'no Connection header on HTTP/2');
    await draining;
    assert.deepEqual(h.router.stats(), { inflight: 0, websockets: 0 });
    assert.ok(await until(() => session.destroyed || session.closed));
    assert.equal(h.lines.find((l) => l.path === '/hold')?.protocol, 'h2');
  } finally {
    held.splice(0);
    await h.close();
  }
});

test('drain deadline: an h2 stream with no answer yet gets 503 DRAINING; close() ends what is left', async () => {
  const h = await tlsRouter();
  try {
    const session = await connect(h);
    const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
    const inflight = get(session, '/hold');
    assert.ok(await until(() => held.length === 1));
    await h.router.drain(300);
    const res = await inflight;
    assert.equal(res.status, 503);
    assert.equal(JSON.parse(res.text).code, 'DRAINING');
    await closed;
    assert.deepEqual(h.router.stats(), { inflight: 0, websockets: 0 });
    assert.ok(await until(() => held[0]?.destroyed === true || held[0]?.socket === null), 'the upstream request was aborted');
  } finally {
    held.splice(0);
    await h.close();
  }

  const h2 = await tlsRouter();
  const session = await connect(h2);
  const inflight = get(session, '/hold');
  assert.ok(await until(() => held.length === 1));
  await h2.router.close();
  assert.equal((await inflight).status, 503);
  assert.ok(await until(() => session.destroyed || session.closed), 'close() ended the session');
  held.splice(0);
});

test('a connection that opens no stream is closed after the headers timeout; an idle session gets GOAWAY', async () => {
  const h = await tlsRouter({ ROUTER_HEADERS_TIMEOUT: '300', ROUTER_IDLE_TIMEOUT: '400' });
  try {
    // TLS and ALPN h2, then not even the connection preface.
    await new Promise<void>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: h.port, ALPNProtocols: ['h2'], rejectUnauthorized: false });
      socket.on('error', () => undefined);
      socket.on('close', () => resolve());
      socket.resume();
      setTimeout(() => reject(new Error('still open after 5 s')), 5000).unref();
    });
    const session = await connect(h);
    assert.equal((await get(session, '/one')).status, 200);
    await new Promise<void>((resolve) => session.once('goaway', () => resolve()));
    await new Promise<void>((resolve) => (session.closed ? resolve() : session.once('close', () => resolve())));
  } finally {
    await h.close();
  }
});

test('rapid reset: a burst of streams opened and reset costs the connection, reaches no container, and leaks nothing', async () => {
  const h = await tlsRouter();
  try {
    const raw = await rawH2(h.port);
    const hits = up.hits;
    const head = headerBlock([[':method', 'GET'], [':scheme', 'https'], [':path', '/flood'], [':authority', 'app.localhost']]);
    const burst: Buffer[] = [];
    for (let id = 1; id <= 2 * 1200; id += 2) burst.push(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, head), rstStream(id, CANCEL));
    raw.write(Buffer.concat(burst));
    assert.ok(await until(() => raw.frames.some((f) => f.type === FRAME.GOAWAY), 5000), 'nghttp2 answered the flood with GOAWAY');
    const goaway = raw.frames.find((f) => f.type === FRAME.GOAWAY)!;
    assert.equal(goaway.payload.readUInt32BE(4), http2.constants.NGHTTP2_INTERNAL_ERROR);
    assert.ok(goaway.payload.readUInt32BE(0) < 2 * 1200 - 1, 'streams after the limit were never processed');
    raw.socket.destroy();
    assert.ok(await until(() => h.router.stats().inflight === 0));
    assert.ok(up.hits - hits < 10, `${up.hits - hits} requests reached the container`);
    // The router is unharmed.
    const session = await connect(h);
    assert.equal((await get(session, '/after-flood')).status, 200);
    await closeSession(session);
  } finally {
    await h.close();
  }
});

test('CONNECT over h2 is refused with 400; HEAD is proxied without a body; the session goes on', async () => {
  const h = await tlsRouter();
  try {
    const session = await connect(h);
    const res = await h2Request(session, { ':method': 'CONNECT', ':authority': 'app.localhost:443', accept: 'application/json' });
    assert.equal(res.status, 400);
    assert.equal(JSON.parse(res.text).code, 'BAD_REQUEST');
    const hits = up.hits;
    const head = await get(session, '/head', { ':method': 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal(up.hits, hits + 1);
    assert.equal((await get(session, '/ok')).status, 200);
    await closeSession(session);
  } finally {
    await h.close();
  }
});

test('a response cut by the container resets the stream: the client never sees a short body as complete', async () => {
  const h = await tlsRouter();
  try {
    const session = await connect(h);
    const stream = session.request({ ':path': '/cut', ':authority': 'app.localhost' });
    let bytes = 0;
    stream.on('data', (c: Buffer) => (bytes += c.length));
    const outcome = await new Promise<string>((resolve) => {
      stream.on('end', () => resolve('end'));
      stream.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
      stream.on('close', () => resolve(`close ${stream.rstCode}`));
    });
    assert.notEqual(outcome, 'end', 'a clean end would pass 1000 of 100000 bytes off as the whole body');
    assert.equal(stream.rstCode, http2.constants.NGHTTP2_INTERNAL_ERROR);
    assert.ok(bytes <= 1000);
    assert.equal((await get(session, '/still')).status, 200, 'only the stream was reset');
    await closeSession(session);
    assert.equal(h.lines.find((l) => l.path === '/cut')?.code, 'UPSTREAM_ERROR');
  } finally {
    await h.close();
  }
});

test('an answer before the upload is read reaches the client whole, and the upload is stopped', async () => {
  const h = await tlsRouter();
  try {
    const session = await connect(h);
    const stream = session.request({ ':method': 'POST', ':path': '/early', ':authority': 'app.localhost' }, { endStream: false });
    const reply = h2Response(stream).catch((err: Error) => err);
    // Keep sending until the router tells the client to stop (or 8 MB went out).
    let sent = 0;
    while (!stream.closed && !stream.destroyed && sent < 8 * 1024 * 1024) {
      const ok = stream.write(Buffer.alloc(16 * 1024, 2));
      sent += 16 * 1024;
      if (!ok) await Promise.race([new Promise((r) => stream.once('drain', r)), new Promise((r) => stream.once('close', r))]);
    }
    const res = await reply;
    assert.ok(!(res instanceof Error), String(res));
    assert.equal(res.status, 413);
    assert.equal(res.text, 'too big');
    assert.ok(await until(() => stream.closed));
    assert.ok(sent < 8 * 1024 * 1024, 'the client was told to stop sending');
    assert.equal((await get(session, '/next')).status, 200);
    await closeSession(session);
  } finally {
    await h.close();
  }
});

test('Expect: 100-continue over h2 gets its interim 100 once routed, then the body flows', async () => {
  const h = await tlsRouter();
  try {
    const session = await connect(h);
    const stream = session.request({ ':method': 'PUT', ':path': '/put', ':authority': 'app.localhost', expect: '100-continue' }, { endStream: false });
    const reply = h2Response(stream);
    await new Promise<void>((resolve) => stream.once('continue', () => resolve()));
    stream.end('twelve bytes');
    const res = await reply;
    assert.equal(res.status, 200);
    assert.equal(res.text, 'c1 PUT /put 12');
    await closeSession(session);
  } finally {
    await h.close();
  }
});

test('a request head over the header list limit resets its stream, not the session', async () => {
  const h = await tlsRouter();
  try {
    const session = await connect(h);
    // First a request, so the router's SETTINGS (and its header list limit) are in force.
    assert.equal((await get(session, '/first')).status, 200);
    await assert.rejects(get(session, '/big', { 'x-big': 'b'.repeat(20 * 1024) }));
    assert.equal((await get(session, '/small')).status, 200);
    await closeSession(session);
  } finally {
    await h.close();
  }
});

test('ROUTER_HTTP2=false: ALPN offers HTTP/1.1 only', async () => {
  const h = await tlsRouter({ ROUTER_HTTP2: 'false' });
  try {
    const alpn = await new Promise<string | false>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: h.port, ALPNProtocols: ['h2', 'http/1.1'], rejectUnauthorized: false }, () => {
        const chosen = socket.alpnProtocol ?? false;
        socket.end();
        resolve(chosen);
      });
      socket.on('error', reject);
    });
    assert.equal(alpn, 'http/1.1');
  } finally {
    await h.close();
  }
});
