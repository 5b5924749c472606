/**
 * `npm run rotate-encryption-key`, run as the real command against records written by the
 * real control plane under a previous key.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { EncryptionKey, KeyRing, decryptPrivateKey, encryptPrivateKey } from '../../proto/key-envelope.js';
import { decodeCertRecord, type CertRecord } from '../../proto/records.js';
import { selfSigned, type TestCert } from '../../test-support/certs.js';
import { startHarness, type Harness } from '../../test-support/control-plane.js';
import { redisUrl } from '../../test-support/redis.js';
import { reencryptAll } from '../src/core/reencrypt.js';
import { CertRecordStore } from '../src/store/cert-records.js';

const COMMAND = fileURLToPath(new URL('../src/rotate-encryption-key.js', import.meta.url));
const oldKey = EncryptionKey.generate();
const newKey = EncryptionKey.generate();
const domains = ['www.rot.test', '*.rot.test', 'api.rot.test'];
const certs = new Map<string, TestCert>();

let h: Harness;
before(async () => {
  h = await startHarness('rotate', { KEY_ENCRYPTION_KEY: oldKey.toBase64() });
  await h.deploy('rot', [{ id: 'web-1', host: '10.0.0.1', port: 3000 }]);
  await h.send({ app: 'rot', type: 'domains', domains: [...domains, 'race.rot.test'] });
  for (const domain of domains) {
    const cert = await selfSigned({ sans: [domain] });
    certs.set(domain, cert);
    const res = await h.send({ app: 'rot', type: 'certificate', certificate: { domain, cert: cert.chainPem, key: cert.keyPem } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }
  // A record from before encryption at rest: the command migrates it too.
  const legacy = JSON.parse((await h.redis.get(h.keys.cert('api.rot.test')))!) as Record<string, unknown>;
  legacy['key'] = { alg: 'none', pem: certs.get('api.rot.test')!.keyPem };
  await h.redis.set(h.keys.cert('api.rot.test'), JSON.stringify(legacy));
});
after(async () => {
  await h.close();
});

function run(env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [COMMAND], { env: { PATH: process.env['PATH'] ?? '', REDIS_URL: redisUrl(), REDIS_PREFIX: h.prefix, ...env }, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

const rotationEnv = () => ({ KEY_ENCRYPTION_KEY: newKey.toBase64(), KEY_ENCRYPTION_KEYS_PREVIOUS: oldKey.toBase64() });

async function record(domain: string): Promise<CertRecord> {
  return decodeCertRecord((await h.redis.get(h.keys.cert(domain)))!);
}

test('re-encrypts every record of the prefix with the new key, keeping everything else, idempotently', async () => {
  const before = new Map<string, CertRecord>();
  for (const d of domains) before.set(d, await record(d));
  const sealed = before.get('www.rot.test')!.key;
  assert.ok(sealed.alg === 'A256GCM' && sealed.kid === oldKey.kid, 'written with the old key');

  const first = await run(rotationEnv());
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, new RegExp(`re-encrypted 3, already current 0, failed 0 \\(prefix ${h.prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, current key ${newKey.kid}\\)`));

  const onlyNew = new KeyRing(newKey);
  for (const d of domains) {
    const after = await record(d);
    assert.ok(after.key.alg === 'A256GCM' && after.key.kid === newKey.kid, d);
    // A router holding only the new key opens it.
    assert.equal(decryptPrivateKey(after.key, d, onlyNew), certs.get(d)!.keyPem, d);
    const { key: _a, ...restAfter } = after;
    const { key: _b, ...restBefore } = before.get(d)!;
    assert.deepEqual(restAfter, restBefore, `${d}: only the key changed (same version)`);
  }
  const raw = (await h.redis.get(h.keys.cert('www.rot.test')))!;
  assert.match(raw, /,"version":\d+}$/, 'version stays the last field');

  const second = await run(rotationEnv());
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /re-encrypted 0, already current 3, failed 0/);

  // New certificate events of a control plane with the new key are current already.
  const next = await startHarness('rotate-new', { REDIS_PREFIX: h.prefix, KEY_ENCRYPTION_KEY: newKey.toBase64() });
  try {
    const cert = await selfSigned({ sans: ['www.rot.test'] });
    const res = await next.post('/v1/events', { id: 'rot-new-cert', app: 'rot', seq: 1000, type: 'certificate', certificate: { domain: 'www.rot.test', cert: cert.chainPem, key: cert.keyPem } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    certs.set('www.rot.test', cert);
  } finally {
    await next.cp.close();
    next.redis.disconnect();
  }
  assert.match((await run(rotationEnv())).stdout, /re-encrypted 0, already current 3, failed 0/);
});

test('a record no key of the ring opens is reported, left alone, and fails the command', async () => {
  const stranger = EncryptionKey.generate();
  const base = JSON.parse((await h.redis.get(h.keys.cert('www.rot.test')))!) as Record<string, unknown>;
  const pem = certs.get('www.rot.test')!.keyPem;
  const stray = JSON.stringify({ ...base, domain: 'stray.rot.test', key: encryptPrivateKey(pem, 'stray.rot.test', new KeyRing(stranger)) });
  await h.redis.set(h.keys.cert('stray.rot.test'), stray);
  try {
    const res = await run(rotationEnv());
    assert.equal(res.code, 1);
    assert.match(res.stdout, /re-encrypted 0, already current 3, failed 1/);
    assert.match(res.stderr, new RegExp(`cert:stray\\.rot\\.test: .*encrypted with key ${stranger.kid}`));
    for (const secret of [pem.split('\n')[2]!, stranger.toBase64(), newKey.toBase64(), oldKey.toBase64()]) {
      assert.ok(!res.stdout.includes(secret) && !res.stderr.includes(secret), 'no key material in the output');
    }
    assert.equal(await h.redis.get(h.keys.cert('stray.rot.test')), stray, 'left as it was');
  } finally {
    await h.redis.del(h.keys.cert('stray.rot.test'));
  }
});

test('a certificate written while the record is being re-encrypted is never overwritten', async () => {
  const cert = await selfSigned({ sans: ['race.rot.test'] });
  const base = JSON.parse((await h.redis.get(h.keys.cert('www.rot.test')))!) as Record<string, unknown>;
  const sealedWithOld = JSON.stringify({ ...base, domain: 'race.rot.test', key: encryptPrivateKey(cert.keyPem, 'race.rot.test', new KeyRing(oldKey)) });
  const concurrent = JSON.stringify({ ...base, domain: 'race.rot.test', key: encryptPrivateKey(cert.keyPem, 'race.rot.test', new KeyRing(newKey)), version: 999_999 });
  await h.redis.set(h.keys.cert('race.rot.test'), sealedWithOld);
  const store = new CertRecordStore(h.redis, h.keys);
  let raced = 0;
  const racing = {
    domains: () => store.domains(),
    get: (d: string) => store.get(d),
    async replaceIfUnchanged(d: string, expected: string, next: string) {
      // An event lands between the read and the write.
      if (d === 'race.rot.test' && raced++ === 0) await h.redis.set(h.keys.cert(d), concurrent);
      return store.replaceIfUnchanged(d, expected, next);
    },
  };
  try {
    const report = await reencryptAll(racing, new KeyRing(newKey, [oldKey]));
    assert.equal(raced, 1);
    assert.deepEqual(report, { reencrypted: 0, unchanged: 4, failed: [] });
    assert.equal(await h.redis.get(h.keys.cert('race.rot.test')), concurrent, 'the concurrent write stands');
  } finally {
    await h.redis.del(h.keys.cert('race.rot.test'));
  }
});

test('the command refuses to run without the new key', async () => {
  const res = await run({ KEY_ENCRYPTION_KEYS_PREVIOUS: oldKey.toBase64() });
  assert.equal(res.code, 78);
  assert.match(res.stderr, /KEY_ENCRYPTION_KEY/);
  assert.ok(!res.stderr.includes(oldKey.toBase64()));
  const none = await run({});
  assert.equal(none.code, 78);
  assert.match(none.stderr, /KEY_ENCRYPTION_KEY: must be set/);
});
