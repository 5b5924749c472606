/**
 * ACME HTTP-01 and force_https end to end: challenges published through the control plane's
 * API, answered by the real router from the real Redis.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { startRouter } from '../src/router.js';
import { eventually, routerRequest, startStack, startUpstream, type Stack, type Upstream } from '../../test-support/router.js';

let s: Stack;
let up: Upstream;
before(async () => {
  s = await startStack('e2e-acme');
  up = await startUpstream('c1');
});
after(async () => {
  await s.close();
  await up.close();
});

const thumbprint = createHash('sha256').update('account-key').digest('base64url');
const challengePath = (token: string): string => `/.well-known/acme-challenge/${token}`;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function publish(token: string, ttlSeconds?: number): Promise<string> {
  const keyAuthorization = `${token}.${thumbprint}`;
  const res = await s.h.request('PUT', `/v1/acme-challenges/${token}`, { key_authorization: keyAuthorization, ...(ttlSeconds === undefined ? {} : { ttl_seconds: ttlSeconds }) });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return keyAuthorization;
}

test('a published challenge is served for any Host until it is deleted', async () => {
  await s.h.deploy('acme-app', [up.container]);
  const token = randomBytes(32).toString('base64url');
  const keyAuthorization = await publish(token);
  for (const host of ['acme-app.localhost', 'www.not-routed.example']) {
    const res = await s.get(host, challengePath(token));
    assert.equal(res.status, 200, host);
    assert.equal(res.body, keyAuthorization, host);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
  }
  assert.equal(up.hits, 0, 'the app saw no challenge');
  const lines = s.accessLines.filter((l) => l.path === challengePath(token));
  assert.deepEqual(lines.map((l) => [l.host, l.code, l.app, l.status]), [
    ['acme-app.localhost', '-', '-', 200],
    ['www.not-routed.example', '-', '-', 200],
  ]);

  const deleted = await s.h.request('DELETE', `/v1/acme-challenges/${token}`);
  assert.deepEqual(deleted.body, { deleted: true });
  // Routers reuse an answer for up to a second.
  await eventually(async () => (await s.get('www.not-routed.example', challengePath(token))).status === 404, 1500, 50);
  const gone = await s.get('acme-app.localhost', challengePath(token), { accept: 'application/json' });
  assert.equal(gone.status, 404);
  assert.equal(JSON.parse(gone.body).code, 'ACME_UNKNOWN_TOKEN');
  assert.equal(s.accessLines.at(-1)!.code, 'ACME_UNKNOWN_TOKEN');
});

test('a challenge expires with its ttl_seconds', async () => {
  const token = randomBytes(16).toString('base64url');
  const keyAuthorization = await publish(token, 1);
  const published = Date.now();
  assert.equal((await s.get('expiring.example', challengePath(token))).body, keyAuthorization);
  // Redis drops the key after 1 s; the router's cached answer is at most 1 s old.
  await sleep(1600 - (Date.now() - published));
  assert.equal((await s.get('expiring.example', challengePath(token))).status, 404);
});

test('force_https: 308 to https, ACME still served over HTTP on the same domain', async () => {
  await s.h.deploy('secure-app', [up.container], { settings: { force_https: true } });
  await s.h.send({ app: 'secure-app', type: 'domains', domains: ['www.secure-app.example'] });
  await eventually(async () => (await s.get('www.secure-app.example', '/')).status === 308);
  const res = await s.get('www.secure-app.example', '/login?next=%2Fhome');
  assert.equal(res.status, 308);
  assert.equal(res.headers['location'], 'https://www.secure-app.example:8443/login?next=%2Fhome');
  assert.equal(s.accessLines.at(-1)!.code, 'FORCE_HTTPS');
  assert.equal(s.accessLines.at(-1)!.app, 'secure-app');

  const token = randomBytes(16).toString('base64url');
  const keyAuthorization = await publish(token);
  const challenge = await s.get('www.secure-app.example', challengePath(token));
  assert.equal(challenge.status, 200);
  assert.equal(challenge.body, keyAuthorization);
  assert.equal(up.hits, 0);

  // A router whose HTTPS listener is on 443 leaves the port out.
  const standard = await startRouter({ ...s.config, httpsPort: 443 }, pino({ level: 'silent' }), { accessLog: () => undefined, port: 0 });
  try {
    const redirected = await routerRequest(standard.port, 'secure-app.localhost', '/x');
    assert.equal(redirected.status, 308);
    assert.equal(redirected.headers['location'], 'https://secure-app.localhost/x');
  } finally {
    await standard.close();
  }

  // Turning it off is live too.
  await s.h.send({ app: 'secure-app', type: 'restart', containers: [up.container], settings: { force_https: false } });
  await eventually(async () => (await s.get('www.secure-app.example', '/')).status === 200);
  assert.equal(up.hits > 0, true);
});
