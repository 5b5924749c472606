import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { hostRecord, startRouter, startUpstream, until, type Upstream } from './proxy-harness.test.js';

let up: Upstream;
const held: http.ServerResponse[] = [];
let wsServer: http.Server;
let wss: WebSocketServer;
let wsPort = 0;

before(async () => {
  up = await startUpstream('c1', (req, res) => {
    if (req.url === '/hold') return void held.push(res);
    res.end(`c1 ${req.url}`);
  });
  wsServer = http.createServer();
  wss = new WebSocketServer({ server: wsServer });
  wss.on('connection', (s) => s.on('message', (d) => s.send(String(d))));
  await new Promise<void>((resolve) => wsServer.listen(0, '127.0.0.1', resolve));
  wsPort = (wsServer.address() as AddressInfo).port;
});
after(async () => {
  for (const res of held.splice(0)) res.destroy();
  wss.close();
  wsServer.closeAllConnections();
  await new Promise<void>((resolve) => wsServer.close(() => resolve()));
  await up.close();
});

function get(port: number, path: string, agent: http.Agent | false = false): Promise<{ status: number; connection: string | undefined; body: string; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    let socket: net.Socket | null = null;
    const req = http.request({ host: '127.0.0.1', port, path, headers: { host: 'app.localhost', accept: 'application/json' }, agent }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body, socket: socket! }));
    });
    req.on('socket', (s) => (socket = s));
    req.on('error', reject);
    req.end();
  });
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', () => resolve(true));
  });
}

test('drain: stops accepting, answers what still arrives on idle keep-alive sockets with Connection: close, lets in-flight requests finish', async () => {
  const h = await startRouter();
  h.routes.set('app.localhost', hostRecord('app', [up.container]));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const warm = await get(h.port, '/warm', agent);
    assert.equal(warm.status, 200);
    let idleClosed = false;
    warm.socket.once('close', () => (idleClosed = true));

    const inflight = get(h.port, '/hold');
    assert.ok(await until(() => held.length === 1));

    let drained = false;
    const draining = h.router.drain(10_000).then(() => (drained = true));
    assert.ok(await refused(h.port), 'no new connections');
    // Cutting the idle socket now would race a request the client may be sending on it.
    assert.equal(idleClosed, false, 'the idle keep-alive socket is not cut');
    const late = await get(h.port, '/late', agent);
    assert.equal(late.socket, warm.socket, 'sent on the idle socket');
    assert.equal(late.status, 200);
    assert.equal(late.body, 'c1 /late');
    assert.equal(late.connection, 'close', 'told to reconnect elsewhere');
    assert.ok(await until(() => idleClosed), 'closed after that answer');
    assert.equal(drained, false, 'waits for the request in flight');

    held.shift()!.end('done');
    const res = await inflight;
    assert.equal(res.status, 200);
    assert.equal(res.body, 'done');
    assert.equal(res.connection, 'close');
    await draining;
    assert.deepEqual(h.router.stats(), { inflight: 0, websockets: 0 });
  } finally {
    agent.destroy();
    held.splice(0);
    await h.close();
  }
});

test('drain deadline: a request with no answer yet gets 503 DRAINING, WebSockets get a close frame 1001', async () => {
  const h = await startRouter();
  h.routes.set('app.localhost', hostRecord('app', [up.container]));
  h.routes.set('ws.localhost', hostRecord('ws', [{ id: 'w', host: '127.0.0.1', port: wsPort }]));
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${h.port}/`, { headers: { host: 'ws.localhost' } });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const wsClosed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    const inflight = get(h.port, '/hold');
    assert.ok(await until(() => held.length === 1));
    assert.deepEqual(h.router.stats(), { inflight: 1, websockets: 1 });

    const started = Date.now();
    await h.router.drain(400);
    const took = Date.now() - started;
    assert.ok(took >= 390, `drain took ${took} ms`);
    const res = await inflight;
    assert.equal(res.status, 503);
    assert.equal(JSON.parse(res.body).code, 'DRAINING');
    // 1001 "going away", not 1006 (a reset): clients reconnect without reporting an error.
    assert.equal(await wsClosed, 1001);
    assert.deepEqual(h.router.stats(), { inflight: 0, websockets: 0 });
    assert.ok(h.lines.some((l) => l.protocol === 'websocket' && l.code === 'DRAINING'));
    assert.ok(await until(() => held[0]?.destroyed === true || held[0]?.socket === null), 'the upstream request was aborted');
  } finally {
    held.splice(0);
    await h.close();
  }
});

test('drain deadline in the middle of a frame: the frame is finished, then the close frame follows', async () => {
  // A container that answers the handshake by hand and streams one 256 KiB message in two halves.
  let releaseSecondHalf: () => void = () => undefined;
  const raw = net.createServer((socket) => {
    socket.once('data', (head: Buffer) => {
      const key = /sec-websocket-key: *(\S+)/i.exec(head.toString('latin1'))![1]!;
      const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      const payload = Buffer.alloc(256 * 1024, 0x62);
      const header = Buffer.from([0x82, 127, 0, 0, 0, 0, 0, 0, 0, 0]);
      header.writeUInt32BE(payload.length, 6);
      socket.write(Buffer.concat([header, payload.subarray(0, payload.length / 2)]));
      releaseSecondHalf = () => socket.write(payload.subarray(payload.length / 2));
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
  const h = await startRouter();
  h.routes.set('mid.localhost', hostRecord('mid', [{ id: 'm', host: '127.0.0.1', port: (raw.address() as AddressInfo).port }]));
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${h.port}/`, { headers: { host: 'mid.localhost' } });
    const messages: Buffer[] = [];
    ws.on('message', (data: Buffer) => messages.push(data));
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    const drained = h.router.drain(100);
    // The deadline passes while the frame is half sent; its second half still reaches the client.
    await new Promise((resolve) => setTimeout(resolve, 300));
    releaseSecondHalf();
    assert.equal(await closed, 1001);
    await drained;
    assert.equal(messages.length, 1);
    assert.equal(messages[0]!.length, 256 * 1024);
    assert.ok(messages[0]!.every((b) => b === 0x62));
  } finally {
    await h.close();
    await new Promise<void>((resolve) => raw.close(() => resolve()));
  }
});

test('close() ends everything at once and can be called after drain', async () => {
  const h = await startRouter();
  h.routes.set('app.localhost', hostRecord('app', [up.container]));
  const inflight = get(h.port, '/hold');
  assert.ok(await until(() => held.length === 1));
  await h.router.close();
  assert.equal((await inflight).status, 503);
  assert.equal(h.router.stats().inflight, 0);
  await h.router.close();
  held.splice(0);
});
