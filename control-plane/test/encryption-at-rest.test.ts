/**
 * Private keys at rest, through the real control plane and Redis: sealed with the
 * harness's KEY_ENCRYPTION_KEY, refused without one, and never in an answer, a log line
 * (captured at trace level) or any value stored in Redis.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { EncryptionKey, KeyRing, decryptPrivateKey } from '../../proto/key-envelope.js';
import { decodeCertRecord } from '../../proto/records.js';
import { selfSigned, type TestCert } from '../../test-support/certs.js';
import { TEST_KEY_ENCRYPTION_KEY, startHarness, type Harness } from '../../test-support/control-plane.js';

const c1 = { id: 'web-1', host: '10.0.3.7', port: 31000 };
const ring = new KeyRing(EncryptionKey.fromBase64(TEST_KEY_ENCRYPTION_KEY));

/** The base64 lines of a PEM key (the first is a fixed ASN.1 header for a curve, so skipped): what must never leak. */
function keyMaterial(cert: TestCert): string[] {
  return cert.keyPem.split('\n').filter((l) => l !== '' && !l.startsWith('-----')).slice(1);
}

function assertNoKeyMaterial(text: string, secrets: string[], what: string): void {
  for (const secret of secrets) assert.ok(!text.includes(secret), `${what} holds key material (${secret.slice(0, 6)}…)`);
}

async function allValues(h: Harness): Promise<string> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, found] = await h.redis.scan(cursor, 'MATCH', `${h.prefix}*`, 'COUNT', 1000);
    cursor = next;
    keys.push(...found);
  } while (cursor !== '0');
  const values: string[] = [];
  for (const key of keys) {
    const type = await h.redis.type(key);
    if (type === 'string') values.push((await h.redis.get(key)) ?? '');
    else if (type === 'zset') values.push(...(await h.redis.zrangebylex(key, '-', '+')));
  }
  return values.join('\n');
}

describe('with KEY_ENCRYPTION_KEY', () => {
  let h: Harness;
  const logged: string[] = [];
  before(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logged.push(chunk.toString());
        done();
      },
    });
    h = await startHarness('at-rest', {}, { log: pino({ level: 'trace' }, sink) });
  });
  after(async () => {
    await h.close();
  });

  test('the stored record holds an A256GCM envelope bound to its domain, and no key anywhere in Redis', async () => {
    await h.deploy('omega', [c1]);
    await h.send({ app: 'omega', type: 'domains', domains: ['www.omega.test', 'api.omega.test'] });
    const cert = await selfSigned({ sans: ['www.omega.test'], keyType: 'rsa' });
    const res = await h.send({ app: 'omega', type: 'certificate', certificate: { domain: 'www.omega.test', cert: cert.chainPem, key: cert.keyPem } });
    assert.equal(res.status, 200, JSON.stringify(res.body));

    const raw = (await h.redis.get(h.keys.cert('www.omega.test')))!;
    const record = decodeCertRecord(raw);
    assert.equal(record.key.alg, 'A256GCM');
    assert.ok(record.key.alg === 'A256GCM' && record.key.kid === ring.current.kid);
    assert.ok(!raw.includes('PRIVATE KEY'));
    assert.equal(decryptPrivateKey(record.key, 'www.omega.test', ring), cert.keyPem);
    // Copied under another domain, the record does not open.
    assert.throws(() => decryptPrivateKey(record.key, 'api.omega.test', ring), /does not decrypt/);

    const everything = await allValues(h);
    assert.ok(!everything.includes('PRIVATE KEY'), 'no PEM key in any stored value');
    assertNoKeyMaterial(everything, keyMaterial(cert), 'Redis');
  });

  test('no key material in any answer or log line, for accepted and refused certificates', async () => {
    await h.deploy('psi', [c1]);
    await h.send({ app: 'psi', type: 'domains', domains: ['www.psi.test'] });
    const good = await selfSigned({ sans: ['www.psi.test'] });
    const other = await selfSigned({ sans: ['www.psi.test'], keyType: 'rsa' });
    const wrong = await selfSigned({ sans: ['www.elsewhere.test'] });
    const secrets = [...keyMaterial(good), ...keyMaterial(other), ...keyMaterial(wrong)];
    const answers: string[] = [];
    const send = async (certificate: Record<string, unknown>, expected: number) => {
      const res = await h.send({ app: 'psi', type: 'certificate', certificate: { domain: 'www.psi.test', ...certificate } });
      assert.equal(res.status, expected, JSON.stringify(res.body));
      answers.push(JSON.stringify(res.body));
    };
    await send({ cert: good.chainPem, key: good.keyPem }, 200);
    await send({ cert: good.chainPem, key: other.keyPem }, 400); // key mismatch
    await send({ cert: wrong.chainPem, key: wrong.keyPem }, 400); // domain not covered
    await send({ cert: good.keyPem, key: good.keyPem }, 400); // key pasted into the cert field
    await send({ cert: good.chainPem, key: good.keyPem.replace(/-----END PRIVATE KEY-----\n?$/, '') }, 400); // truncated key
    await send({ cert: good.chainPem, key: good.keyPem.replace(/A/g, '!') }, 400); // unparsable key
    await send({ cert: good.chainPem, key: 42 }, 400);

    // A body that is no JSON, failing right inside the key: V8's parse error would quote it.
    const secretLine = keyMaterial(other)[2]!;
    const badJson = await h.post('/v1/events', undefined, { raw: `{"id":"x","app":"psi","seq":99,"type":"certificate","certificate":{"domain":"www.psi.test","cert":"c","key":${secretLine}}}` });
    assert.equal(badJson.status, 400);
    assert.equal(badJson.body.code, 'INVALID_JSON');
    answers.push(JSON.stringify(badJson.body));
    const fragments = [...secrets, secretLine.slice(0, 10)];

    assertNoKeyMaterial(answers.join('\n'), fragments, 'an API answer');
    const log = logged.join('');
    assert.match(log, /"msg":"event applied"/, 'the log was captured');
    assert.match(log, /"code":"INVALID_CERTIFICATE"/, 'refusals were logged');
    assert.match(log, /"code":"INVALID_JSON"/);
    // Refusals may name a PEM label ("a PRIVATE KEY block"), never its content.
    assert.doesNotMatch(log, /-----BEGIN [A-Z ]*PRIVATE KEY-----(\\n|\n)/, 'no PEM key in the log');
    assertNoKeyMaterial(log, fragments, 'the log');
    assertNoKeyMaterial(await allValues(h), secrets, 'Redis');
  });
});

describe('without KEY_ENCRYPTION_KEY', () => {
  let keyed: Harness;
  let h: Harness;
  before(async () => {
    keyed = await startHarness('at-rest-keyed');
    // The same prefix as `keyed`, so it can act on a certificate stored with a key.
    h = await startHarness('at-rest-nokey', { KEY_ENCRYPTION_KEY: '', REDIS_PREFIX: keyed.prefix });
  });
  after(async () => {
    await h.close();
    await keyed.close();
  });

  test('setting a certificate is ENCRYPTION_KEY_MISSING and writes nothing; every other event works', async () => {
    const certs = { www: await selfSigned({ sans: ['www.chi.test'] }), api: await selfSigned({ sans: ['api.chi.test'] }) };
    const send = (seq: number, event: Record<string, unknown>) => h.post('/v1/events', { id: `chi-${seq}`, app: 'chi', seq, ...event });
    assert.equal((await send(1, { type: 'deploy', containers: [c1] })).status, 200);
    assert.equal((await send(2, { type: 'domains', domains: ['www.chi.test', 'api.chi.test'] })).status, 200);
    // Stored by a control plane that has the key.
    const stored = await keyed.post('/v1/events', { id: 'chi-3', app: 'chi', seq: 3, type: 'certificate', certificate: { domain: 'api.chi.test', cert: certs.api.chainPem, key: certs.api.keyPem } });
    assert.equal(stored.status, 200, JSON.stringify(stored.body));

    const keysBefore = await keyed.keyCount();
    const versionBefore = await keyed.redis.get(keyed.keys.versionKey);
    const refused = await send(4, { type: 'certificate', certificate: { domain: 'www.chi.test', cert: certs.www.chainPem, key: certs.www.keyPem } });
    assert.equal(refused.status, 503);
    assert.equal(refused.body.code, 'ENCRYPTION_KEY_MISSING');
    assert.match(refused.body.message, /KEY_ENCRYPTION_KEY is not set/);
    assertNoKeyMaterial(JSON.stringify(refused.body), keyMaterial(certs.www), 'the refusal');
    assert.equal(await keyed.redis.get(keyed.keys.cert('www.chi.test')), null);
    assert.equal(await keyed.keyCount(), keysBefore, 'no key written');
    assert.equal(await keyed.redis.get(keyed.keys.versionKey), versionBefore, 'no version allocated');
    assert.equal(await keyed.redis.get(keyed.keys.event('chi-4')), null, 'the event id is not burnt');

    // Removing a certificate needs no key, and neither do the other event types.
    const removed = await send(5, { type: 'certificate', certificate: { domain: 'api.chi.test', remove: true } });
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    assert.equal(await keyed.redis.get(keyed.keys.cert('api.chi.test')), null);
    assert.equal((await send(6, { type: 'scale', containers: [c1, { id: 'web-2', host: '10.0.3.8', port: 31001 }] })).status, 200);
    assert.equal((await send(7, { type: 'stop', settings: { force_https: true } })).status, 200);
    assert.equal((await send(8, { type: 'delete' })).status, 200);
  });
});
