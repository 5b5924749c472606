import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { hostRecord, rawExchange, request, startRouter, startUpstream, type Harness, type Upstream } from './proxy-harness.test.js';

let h: Harness;
let up: Upstream;

/** The upstream answers with the headers it received, and adds hop-by-hop headers of its own. */
before(async () => {
  up = await startUpstream('echo', (req, res) => {
    const body = JSON.stringify({ headers: req.headers, raw: req.rawHeaders });
    res.writeHead(200, [
      'Content-Length', String(Buffer.byteLength(body)),
      'Content-Type', 'application/json',
      'Connection', 'X-Secret-Hop',
      'X-Secret-Hop', 'must not reach the client',
      'Keep-Alive', 'timeout=77, max=9',
      'Proxy-Authenticate', 'Basic',
      'Set-Cookie', 'a=1',
      'Set-Cookie', 'b=2',
      'Via', '1.0 app-side',
      'X-Request-Id', 'upstream-made-this-id-up-0000',
    ]);
    res.end(body);
  });
  h = await startRouter({}, { routerName: 'test-router' });
  h.routes.set('hdr.localhost', hostRecord('hdr', [up.container]));
});
after(async () => {
  await h.close();
  await up.close();
});

function seen(body: string): { headers: Record<string, string>; raw: string[] } {
  return JSON.parse(body) as { headers: Record<string, string>; raw: string[] };
}

test('forwarded headers: XFF appended, XFP, X-Forwarded-Port, X-Request-Start, Via appended, Host preserved', async () => {
  const before = Date.now();
  const res = await request(h.port, 'Hdr.LocalHost:8080', { headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https', 'x-forwarded-port': '1', via: '1.1 edge' } });
  assert.equal(res.status, 200);
  const got = seen(res.body).headers;
  assert.equal(got['x-forwarded-for'], '203.0.113.7, 127.0.0.1');
  assert.equal(got['x-forwarded-proto'], 'http', 'the client cannot claim https');
  assert.equal(got['x-forwarded-port'], String(h.port));
  assert.equal(got['host'], 'Hdr.LocalHost:8080', 'Host exactly as the client sent it');
  assert.equal(got['via'], '1.1 edge, 1.1 test-router');
  const start = /^t=(\d+)$/.exec(got['x-request-start'] ?? '');
  assert.ok(start, `X-Request-Start is t=<ms>: ${got['x-request-start']}`);
  assert.ok(Number(start[1]) >= before && Number(start[1]) <= Date.now());
});

test('a request without X-Forwarded-For gets the client address alone', async () => {
  const got = seen((await request(h.port, 'hdr.localhost')).body).headers;
  assert.equal(got['x-forwarded-for'], '127.0.0.1');
  assert.equal(got['via'], '1.1 test-router');
});

test('request id: a valid one is kept and echoed, an invalid one replaced, none gets a fresh one', async () => {
  const valid = 'abcDEF0123456789+/=-xyz';
  const kept = await request(h.port, 'hdr.localhost', { headers: { 'x-request-id': valid } });
  assert.equal(seen(kept.body).headers['x-request-id'], valid);
  assert.equal(kept.headers['x-request-id'], valid, 'echoed, and the upstream one is not passed through');

  for (const bad of ['short', 'has space in it but long enough', 'x'.repeat(201), 'semi;colon;is;not;allowed;here']) {
    const res = await request(h.port, 'hdr.localhost', { headers: { 'x-request-id': bad } });
    const forwarded = seen(res.body).headers['x-request-id'];
    assert.notEqual(forwarded, bad);
    assert.match(forwarded ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(res.headers['x-request-id'], forwarded);
  }
  const a = await request(h.port, 'hdr.localhost');
  const b = await request(h.port, 'hdr.localhost');
  assert.notEqual(a.headers['x-request-id'], b.headers['x-request-id']);
  assert.equal(a.headers['x-request-id'], seen(a.body).headers['x-request-id']);
});

/** Raw bytes, so the client library cannot tidy the headers up first. */
async function rawGet(headerLines: string): Promise<{ head: string; body: string }> {
  const raw = await rawExchange(h.port, `GET / HTTP/1.1\r\nHost: hdr.localhost\r\n${headerLines}\r\n`);
  const split = raw.indexOf('\r\n\r\n');
  return { head: raw.slice(0, split), body: raw.slice(split + 4) };
}

test('hop-by-hop request headers are not forwarded, including those Connection names', async () => {
  const res = await rawGet(
    'Connection: close, X-Client-Hop\r\nX-Client-Hop: secret\r\nKeep-Alive: timeout=10\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n' +
      'Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-Foo\r\nX-Kept: yes\r\n',
  );
  assert.match(res.head, /^HTTP\/1\.1 200/);
  const got = seen(res.body).headers;
  for (const name of ['x-client-hop', 'keep-alive', 'proxy-authorization', 'proxy-connection', 'te', 'trailer']) {
    assert.equal(got[name], undefined, `${name} forwarded`);
  }
  assert.equal(got['x-kept'], 'yes');
});

test('an Upgrade header on a plain request is not forwarded', async () => {
  // Without Connection: upgrade, Node treats it as a normal request.
  const got = seen((await request(h.port, 'hdr.localhost', { headers: { upgrade: 'h2c' } })).body).headers;
  assert.equal(got['upgrade'], undefined);
});

test('hop-by-hop response headers are stripped; Set-Cookie kept twice; Via appended', async () => {
  const res = await request(h.port, 'hdr.localhost');
  assert.equal(res.headers['x-secret-hop'], undefined);
  assert.equal(res.headers['proxy-authenticate'], undefined);
  assert.equal(res.headers['keep-alive'], undefined, 'the container keep-alive is not the client one');
  assert.deepEqual(res.headers['set-cookie'], ['a=1', 'b=2']);
  assert.equal(res.headers['via'], '1.0 app-side, 1.1 test-router');
  assert.equal(res.headers['content-type'], 'application/json');
});

test('repeated client headers keep their order and casing upstream', async () => {
  const rawHeaders = seen((await rawGet('X-Dup: 1\r\nx-DUP: 2\r\nConnection: close\r\n')).body).raw;
  const dup = rawHeaders.flatMap((v, i) => (i % 2 === 0 && v.toLowerCase() === 'x-dup' ? [`${v}=${rawHeaders[i + 1]}`] : []));
  assert.deepEqual(dup, ['X-Dup=1', 'x-DUP=2']);
});
