import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { startHarness, type Harness } from '../../test-support/control-plane.js';

let h: Harness;
before(async () => {
  h = await startHarness('acme');
});
after(async () => {
  await h.close();
});

const thumbprint = createHash('sha256').update('jwk').digest('base64url');
const newToken = (): string => randomBytes(32).toString('base64url');

test('PUT publishes a challenge with its TTL; PUT again replaces it; DELETE removes it once', async () => {
  const token = newToken();
  const before = Date.now();
  const res = await h.request('PUT', `/v1/acme-challenges/${token}`, { key_authorization: `${token}.${thumbprint}` });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.deepEqual(Object.keys(res.body).sort(), ['expires_at', 'token']);
  assert.equal(res.body.token, token);
  const expires = Date.parse(res.body.expires_at);
  assert.ok(expires >= before + 600_000 - 1000 && expires <= Date.now() + 600_000 + 1000, res.body.expires_at);
  assert.equal(await h.redis.get(h.keys.acmeChallenge(token)), `${token}.${thumbprint}`);
  const ttl = await h.redis.ttl(h.keys.acmeChallenge(token));
  assert.ok(ttl > 590 && ttl <= 600, `ttl ${ttl}`);

  const other = `${token}.${'B'.repeat(86)}`;
  const again = await h.request('PUT', `/v1/acme-challenges/${token}`, { key_authorization: other, ttl_seconds: 30 }, { auth: 'hmac' });
  assert.equal(again.status, 200, JSON.stringify(again.body));
  assert.equal(await h.redis.get(h.keys.acmeChallenge(token)), other);
  assert.ok((await h.redis.ttl(h.keys.acmeChallenge(token))) <= 30);

  const deleted = await h.request('DELETE', `/v1/acme-challenges/${token}`);
  assert.equal(deleted.status, 200);
  assert.deepEqual(deleted.body, { deleted: true });
  assert.equal(await h.redis.get(h.keys.acmeChallenge(token)), null);
  assert.deepEqual((await h.request('DELETE', `/v1/acme-challenges/${token}`)).body, { deleted: false });
});

test('tokens: 1–256 base64url characters', async () => {
  const longest = 'a'.repeat(256);
  assert.equal((await h.request('PUT', `/v1/acme-challenges/${longest}`, { key_authorization: `${longest}.${thumbprint}` })).status, 200);
  await h.request('DELETE', `/v1/acme-challenges/${longest}`);
  for (const bad of ['a'.repeat(257), 'with.dot', 'a%2Fb', 'sp%20ace', '%C3%A9t%C3%A9']) {
    const res = await h.request('PUT', `/v1/acme-challenges/${bad}`, { key_authorization: `${bad}.${thumbprint}` });
    assert.equal(res.status, 400, bad);
    assert.equal(res.body.code, 'INVALID_FIELD', bad);
    assert.equal(res.body.field, 'token', bad);
    const del = await h.request('DELETE', `/v1/acme-challenges/${bad}`);
    assert.equal(del.body.field, 'token', `DELETE ${bad}`);
  }
});

test('bodies: exactly key_authorization (for this token) and ttl_seconds 1–86400', async () => {
  const token = newToken();
  const ka = `${token}.${thumbprint}`;
  const cases: Array<[string, unknown, string, string]> = [
    ['unknown field', { key_authorization: ka, ttl_seconds: 60, extra: 1 }, 'UNKNOWN_FIELD', 'extra'],
    ['missing key_authorization', { ttl_seconds: 60 }, 'INVALID_FIELD', 'key_authorization'],
    ['another token', { key_authorization: `${newToken()}.${thumbprint}` }, 'INVALID_FIELD', 'key_authorization'],
    ['no thumbprint', { key_authorization: token }, 'INVALID_FIELD', 'key_authorization'],
    ['short thumbprint', { key_authorization: `${token}.${thumbprint.slice(1)}` }, 'INVALID_FIELD', 'key_authorization'],
    ['bad characters', { key_authorization: `${token}.${thumbprint.slice(1)}=` }, 'INVALID_FIELD', 'key_authorization'],
    ['not a string', { key_authorization: 42 }, 'INVALID_FIELD', 'key_authorization'],
    ['ttl 0', { key_authorization: ka, ttl_seconds: 0 }, 'INVALID_FIELD', 'ttl_seconds'],
    ['ttl too long', { key_authorization: ka, ttl_seconds: 86_401 }, 'INVALID_FIELD', 'ttl_seconds'],
    ['ttl fraction', { key_authorization: ka, ttl_seconds: 1.5 }, 'INVALID_FIELD', 'ttl_seconds'],
    ['ttl string', { key_authorization: ka, ttl_seconds: '600' }, 'INVALID_FIELD', 'ttl_seconds'],
    ['not an object', [ka], 'INVALID_FIELD', 'body'],
  ];
  for (const [name, body, code, field] of cases) {
    const res = await h.request('PUT', `/v1/acme-challenges/${token}`, body);
    assert.equal(res.status, 400, name);
    assert.equal(res.body.code, code, name);
    assert.equal(res.body.field, field, name);
  }
  const notJson = await h.request('PUT', `/v1/acme-challenges/${token}`, undefined, { raw: '{"key_authorization":' });
  assert.equal(notJson.body.code, 'INVALID_JSON');
  assert.equal(await h.redis.get(h.keys.acmeChallenge(token)), null, 'nothing was written');
  assert.equal((await h.request('PUT', `/v1/acme-challenges/${token}`, { key_authorization: ka, ttl_seconds: 86_400 })).status, 200);
});

test('challenges need credentials like every /v1 call', async () => {
  const token = newToken();
  const put = await h.request('PUT', `/v1/acme-challenges/${token}`, { key_authorization: `${token}.${thumbprint}` }, { auth: 'none' });
  assert.equal(put.status, 401);
  assert.equal(put.body.code, 'UNAUTHENTICATED');
  assert.equal((await h.request('DELETE', `/v1/acme-challenges/${token}`, undefined, { auth: 'none' })).status, 401);
  assert.equal(await h.redis.get(h.keys.acmeChallenge(token)), null);
});
