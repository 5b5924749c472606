import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { eventually, startStack, startUpstream, type Stack, type Upstream } from '../../test-support/router.js';

interface EchoServer {
  container: { id: string; host: string; port: number };
  close(): Promise<void>;
}

async function startEcho(id: string): Promise<EchoServer> {
  const server = http.createServer((_req, res) => res.end(id));
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(isBinary ? data : `${id}:${data.toString()}`)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    container: { id, host: '127.0.0.1', port },
    close: () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

let s: Stack;
let echo1: EchoServer;
let echo2: EchoServer;
let other: Upstream;

before(async () => {
  s = await startStack('ws');
  echo1 = await startEcho('e1');
  echo2 = await startEcho('e2');
  other = await startUpstream('other');
});
after(async () => {
  await s.close();
  await Promise.all([echo1.close(), echo2.close(), other.close()]);
});

function open(host: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${s.router.port}/socket`, { headers: { host } });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function roundTrip(ws: WebSocket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no echo within 2 s')), 2000);
    ws.once('message', (data) => {
      clearTimeout(timer);
      resolve(data.toString());
    });
    ws.send(text);
  });
}

test('an open WebSocket survives 100 scale events of its own app and deploys of others', async () => {
  await s.h.deploy('chat', [echo1.container]);
  await eventually(async () => (await s.get('chat.localhost')).status === 200);
  const ws = await open('chat.localhost');
  let closed = false;
  ws.on('close', () => (closed = true));
  assert.equal(await roundTrip(ws, 'hello'), 'e1:hello');

  for (let i = 0; i < 100; i++) {
    const containers = i % 2 === 0 ? [echo2.container] : [echo1.container, echo2.container];
    assert.equal((await s.h.send({ app: 'chat', type: 'scale', containers })).status, 200);
    assert.equal((await s.h.deploy(`other-${i % 10}`, [other.container])).status, 200);
    if (i % 10 === 0) assert.equal(await roundTrip(ws, `m${i}`), `e1:m${i}`, 'still on its first container');
  }
  assert.equal(await roundTrip(ws, 'still here'), 'e1:still here');
  assert.equal(closed, false);
  // New sessions follow the new topology (the last scale left e1 + e2).
  const fresh = await open('chat.localhost');
  assert.match(await roundTrip(fresh, 'x'), /^e[12]:x$/);
  fresh.close();
  ws.close();
});

test('a WebSocket to an unknown host is refused with 404', async () => {
  await assert.rejects(open('nobody.localhost'), /404/);
});
