import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { h2ResponseHeaders } from '../src/proxy/h2-client.js';
import { AUTHORITY, CONTENT_LENGTH, HOP, OTHER, PSEUDO, headerKind } from '../src/proxy/header-kinds.js';
import { RequestHead, scanRequest, type Forwarding } from '../src/proxy/headers.js';
import type { ClientRequest } from '../src/proxy/client.js';

test('pseudo-headers and HTTP2-Settings have their kinds; lookalikes do not', () => {
  assert.equal(headerKind(':authority'), AUTHORITY);
  for (const pseudo of [':method', ':path', ':scheme', ':protocol', ':status']) assert.equal(headerKind(pseudo), PSEUDO, pseudo);
  assert.equal(headerKind('HTTP2-Settings'), HOP);
  assert.equal(headerKind('content-length'), CONTENT_LENGTH);
  for (const other of ['authority', 'http2-setting5', 'path']) assert.equal(headerKind(other), OTHER, other);
});

test('h2 response head: lower-cased, repeated fields joined, Set-Cookie a list, connection-specific dropped, no prototype', () => {
  const head = h2ResponseHeaders(201, [
    'Content-Type', 'text/plain',
    'X-Dup', '1',
    'x-dup', '2',
    'Set-Cookie', 'a=1',
    'set-cookie', 'b=2',
    'Connection', 'close',
    'Keep-Alive', 'timeout=5',
    'Transfer-Encoding', 'chunked',
    'Upgrade', 'h2c',
    'Proxy-Connection', 'keep-alive',
    'HTTP2-Settings', 'AAAA',
    'TE', 'gzip',
    'constructor', 'x',
    '__proto__', 'y',
  ]);
  assert.equal(Object.getPrototypeOf(head), null);
  assert.deepEqual({ ...head }, {
    ':status': 201,
    'content-type': 'text/plain',
    'x-dup': '1, 2',
    'set-cookie': ['a=1', 'b=2'],
    constructor: 'x',
    ['__proto__']: 'y',
  });
});

const fwd: Forwarding = { proto: 'https', port: '8443', via: '1.1 r', via2: '2 r' };

function h2Request(rawHeaders: string[], complete: boolean): ClientRequest {
  const socket = new net.Socket();
  return { httpVersionMajor: 2, method: 'GET', url: '/', rawHeaders, headers: {}, complete, socket };
}

test('an h2 request head: :authority is the Host, pseudo-headers dropped, cookie crumbs joined, Via 2, body from END_STREAM', () => {
  const head = new RequestHead();
  scanRequest(
    h2Request([':method', 'POST', ':path', '/p', ':scheme', 'https', ':authority', 'App.example.com', 'cookie', 'a=1', 'x-kept', 'yes', 'cookie', 'b=2', 'te', 'trailers'], false),
    false,
    fwd,
    1,
    head,
  );
  assert.equal(head.host, 'App.example.com');
  assert.equal(head.hostCount, 1);
  assert.equal(head.cookie, 'a=1; b=2');
  assert.equal(head.hasBody, true, 'no END_STREAM on HEADERS: a body follows, Content-Length or not');
  const names = head.upstream.filter((_, i) => i % 2 === 0);
  assert.ok(!names.some((n) => n.startsWith(':')), names.join(' '));
  assert.ok(!names.includes('te'));
  assert.deepEqual(head.upstream.slice(0, 4), ['host', 'App.example.com', 'x-kept', 'yes']);
  assert.equal(head.upstream[head.upstream.indexOf('cookie') + 1], 'a=1; b=2');
  assert.equal(names.filter((n) => n === 'cookie').length, 1);
  assert.equal(head.upstream[head.upstream.indexOf('via') + 1], '2 r');

  const same = new RequestHead();
  scanRequest(h2Request([':authority', 'app.example.com', 'host', 'APP.example.com'], true), false, fwd, 1, same);
  assert.equal(same.hostCount, 1, 'Host naming :authority again is one Host');
  assert.equal(same.hasBody, false);
  assert.equal(same.upstream.filter((v, i) => i % 2 === 0 && v === 'host').length, 1);

  const other = new RequestHead();
  scanRequest(h2Request([':authority', 'app.example.com', 'host', 'evil.example.com'], true), false, fwd, 1, other);
  assert.equal(other.hostCount, 2, 'a different Host is ambiguous (400 BAD_HOST)');

  const hostOnly = new RequestHead();
  scanRequest(h2Request([':method', 'GET', 'host', 'app.example.com'], true), false, fwd, 1, hostOnly);
  assert.equal(hostOnly.host, 'app.example.com');
  assert.equal(hostOnly.hostCount, 1);
});
