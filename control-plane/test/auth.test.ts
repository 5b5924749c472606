import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { signBody } from '../src/auth.js';
import { TEST_HOOK_SECRET, startHarness, type Harness } from '../../test-support/control-plane.js';

let h: Harness;
before(async () => {
  h = await startHarness('auth');
});
after(async () => {
  await h.close();
});

function event(app: string, seq: number): string {
  return JSON.stringify({ id: `auth-${app}-${seq}`, app, seq, type: 'deploy', containers: [{ id: 'w', host: '127.0.0.1', port: 3000 }] });
}

async function send(body: string, headers: Record<string, string>) {
  return h.post('/v1/events', undefined, { auth: 'none', raw: body, headers });
}

test('bearer token: accepted, wrong, malformed, missing', async () => {
  assert.equal((await h.get('/v1/apps', { auth: 'token' })).status, 200);
  for (const authorization of ['Bearer nope', 'Basic dXNlcjpwYXNz', 'Bearer', `Bearer ${'x'.repeat(600)}`]) {
    const res = await h.get('/v1/apps', { auth: 'none', headers: { authorization } });
    assert.equal(res.status, 401, authorization.slice(0, 20));
    assert.equal(res.body.code, 'UNAUTHENTICATED');
  }
  const none = await h.get('/v1/apps', { auth: 'none' });
  assert.equal(none.status, 401);
  assert.match(none.body.message, /Bearer|Signature/);
});

test('a bad token on a write writes nothing', async () => {
  const before = await h.keyCount();
  const res = await send(event('unauth', 1), { authorization: 'Bearer wrong' });
  assert.equal(res.status, 401);
  assert.equal(await h.keyCount(), before);
});

test('HMAC signature over the raw body is accepted', async () => {
  const body = event('signed', 1);
  const res = await send(body, { 'x-platform-signature': signBody(TEST_HOOK_SECRET, body) });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  // GET with an empty body is signed over "t." alone.
  const get = await h.get('/v1/apps/signed', { auth: 'hmac' });
  assert.equal(get.status, 200);
});

test('HMAC: bad secret, altered body, expired, future, malformed, replayed', async () => {
  const body = event('signed2', 1);
  const now = Math.floor(Date.now() / 1000);
  const cases: Array<[string, string, string]> = [
    ['wrong secret', body, signBody('another-secret-of-length', body)],
    ['body altered after signing', body.replace('3000', '3001'), signBody(TEST_HOOK_SECRET, body)],
    ['expired', body, signBody(TEST_HOOK_SECRET, body, now - 301)],
    ['from the future', body, signBody(TEST_HOOK_SECRET, body, now + 400)],
    ['malformed', body, 't=abc,v1=zz'],
    ['empty', body, ''],
  ];
  const before = await h.keyCount();
  for (const [name, sent, signature] of cases) {
    const res = await send(sent, { 'x-platform-signature': signature });
    assert.equal(res.status, 401, name);
    assert.equal(res.body.code, 'UNAUTHENTICATED', name);
  }
  assert.equal(await h.keyCount(), before, 'nothing written');

  const sig = signBody(TEST_HOOK_SECRET, body);
  assert.equal((await send(body, { 'x-platform-signature': sig })).status, 200);
  const replay = await send(body, { 'x-platform-signature': sig });
  assert.equal(replay.status, 401);
  assert.match(replay.body.message, /already used/);
});

test('health endpoints are open, unknown endpoints are 404 with a code', async () => {
  assert.equal((await h.get('/healthz', { auth: 'none' })).status, 200);
  const unknown = await h.get('/v2/things');
  assert.equal(unknown.status, 404);
  assert.equal(unknown.body.code, 'NOT_FOUND');
});
