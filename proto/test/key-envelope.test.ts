import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { inspect } from 'node:util';
import { ConfigError } from '../config/env.js';
import { EncryptionKey, KeyEnvelopeError, KeyRing, decryptPrivateKey, encryptPrivateKey, isSealedWithCurrent, keyRingFrom } from '../key-envelope.js';
import type { KeyEnvelope } from '../records.js';
import { loadRouterConfig } from '../../data-plane/src/config.js';

const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
/** A line from the middle of the PEM: key material an error or a log line must never hold. */
const keyLine = pem.split('\n')[1]!;
const oldKey = EncryptionKey.generate();
const newKey = EncryptionKey.generate();

test('a private key round-trips through an A256GCM envelope with a fresh IV each time', () => {
  const ring = new KeyRing(newKey);
  const a = encryptPrivateKey(pem, 'www.example.com', ring);
  const b = encryptPrivateKey(pem, 'www.example.com', ring);
  assert.equal(a.alg, 'A256GCM');
  assert.ok(a.alg === 'A256GCM' && b.alg === 'A256GCM');
  assert.match(a.kid, /^[0-9a-f]{16}$/);
  assert.equal(a.kid, newKey.kid);
  assert.equal(Buffer.from(a.iv, 'base64').length, 12);
  assert.equal(Buffer.from(a.tag, 'base64').length, 16);
  assert.notEqual(a.iv, b.iv);
  assert.notEqual(a.ct, b.ct);
  assert.ok(!JSON.stringify(a).includes(keyLine));
  assert.ok(!JSON.stringify(a).includes('PRIVATE KEY'));
  assert.equal(decryptPrivateKey(a, 'www.example.com', ring), pem);
  assert.equal(decryptPrivateKey(b, 'www.example.com', ring), pem);
});

test('the envelope is bound to its domain', () => {
  const ring = new KeyRing(newKey);
  const sealed = encryptPrivateKey(pem, 'www.example.com', ring);
  assert.throws(() => decryptPrivateKey(sealed, 'evil.example.com', ring), (err: unknown) => {
    assert.ok(err instanceof KeyEnvelopeError);
    assert.match(err.message, /does not decrypt with key [0-9a-f]{16}.*another domain/);
    return true;
  });
});

test('a tampered envelope is refused', () => {
  const ring = new KeyRing(newKey);
  const sealed = encryptPrivateKey(pem, 'a.example.com', ring) as Extract<KeyEnvelope, { alg: 'A256GCM' }>;
  const ct = Buffer.from(sealed.ct, 'base64');
  ct[0] = ct[0]! ^ 1;
  assert.throws(() => decryptPrivateKey({ ...sealed, ct: ct.toString('base64') }, 'a.example.com', ring), KeyEnvelopeError);
  assert.throws(() => decryptPrivateKey({ ...sealed, tag: sealed.tag.slice(0, 8) }, 'a.example.com', ring), /malformed iv or tag/);
});

test('a wrong or missing key is a clear error that holds no key material', () => {
  const sealed = encryptPrivateKey(pem, 'a.example.com', new KeyRing(oldKey));
  const check = (ring: KeyRing | undefined, expected: RegExp) =>
    assert.throws(() => decryptPrivateKey(sealed, 'a.example.com', ring), (err: unknown) => {
      assert.ok(err instanceof KeyEnvelopeError);
      assert.match(err.message, expected);
      for (const secret of [keyLine, oldKey.toBase64(), newKey.toBase64(), sealed.alg === 'A256GCM' ? sealed.ct.slice(0, 24) : '']) {
        assert.ok(!err.message.includes(secret), 'no key material in the message');
        assert.ok(!inspect(err).includes(secret), 'nor in the inspected error');
      }
      return true;
    });
  check(new KeyRing(newKey), new RegExp(`encrypted with key ${oldKey.kid}, which is neither KEY_ENCRYPTION_KEY \\(${newKey.kid}\\) nor in KEY_ENCRYPTION_KEYS_PREVIOUS`));
  check(undefined, /KEY_ENCRYPTION_KEY is not set/);
  // A key with the same id but other bytes cannot exist; a forged kid still fails authentication.
  const forged = { ...sealed, kid: newKey.kid } as KeyEnvelope;
  assert.throws(() => decryptPrivateKey(forged, 'a.example.com', new KeyRing(newKey)), /does not decrypt/);
});

test('the ring opens records of previous keys and seals with the current one', () => {
  const before = encryptPrivateKey(pem, 'a.example.com', new KeyRing(oldKey));
  const ring = new KeyRing(newKey, [oldKey]);
  assert.deepEqual(ring.kids, [newKey.kid, oldKey.kid]);
  assert.equal(decryptPrivateKey(before, 'a.example.com', ring), pem);
  assert.equal(isSealedWithCurrent(before, ring), false);
  assert.equal(isSealedWithCurrent(encryptPrivateKey(pem, 'a.example.com', ring), ring), true);
  assert.equal(isSealedWithCurrent({ alg: 'none', pem }, ring), false);
});

test('records written before encryption (alg none) are still read, with or without a ring', () => {
  assert.equal(decryptPrivateKey({ alg: 'none', pem }, 'a.example.com', undefined), pem);
  assert.equal(decryptPrivateKey({ alg: 'none', pem }, 'a.example.com', new KeyRing(newKey)), pem);
  assert.throws(() => decryptPrivateKey({ alg: 'rot13' } as unknown as KeyEnvelope, 'a.example.com', undefined), /unknown alg/);
});

test('keys and rings never show their bytes when logged', () => {
  const ring = new KeyRing(newKey, [oldKey]);
  for (const shown of [JSON.stringify(newKey), JSON.stringify(ring), inspect(newKey, { depth: 5, showHidden: true }), inspect(ring, { depth: 5, showHidden: true }), JSON.stringify({ config: { keyEncryptionKey: newKey } })]) {
    assert.ok(!shown.includes(newKey.toBase64()), shown);
    assert.ok(!shown.includes(oldKey.toBase64()), shown);
    assert.ok(!shown.includes(newKey.bytes().toString('hex')), shown);
  }
  assert.deepEqual(JSON.parse(JSON.stringify(ring)), { current: newKey.kid, kids: [newKey.kid, oldKey.kid] });
});

test('KEY_ENCRYPTION_KEY must be the base64 of exactly 32 bytes, and is never echoed', () => {
  const good = newKey.toBase64();
  const config = loadRouterConfig({ KEY_ENCRYPTION_KEY: good, KEY_ENCRYPTION_KEYS_PREVIOUS: ` ${oldKey.toBase64()} ,` });
  assert.equal(config.keyEncryptionKey?.kid, newKey.kid);
  assert.deepEqual(keyRingFrom(config)?.kids, [newKey.kid, oldKey.kid]);
  assert.equal(keyRingFrom(loadRouterConfig({})), undefined);
  assert.equal(EncryptionKey.fromBase64(newKey.toBase64().replace(/\+/g, '-').replace(/\//g, '_')).kid, newKey.kid, 'base64url works too');

  const refused = (env: Record<string, string>, name: string, secret: string) =>
    assert.throws(() => loadRouterConfig(env), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.ok(err.problems.some((p) => p.startsWith(`${name}:`)), err.message);
      assert.ok(!err.message.includes(secret), 'the value is not echoed');
      return true;
    });
  const short = Buffer.alloc(31, 7).toString('base64');
  refused({ KEY_ENCRYPTION_KEY: short }, 'KEY_ENCRYPTION_KEY', short);
  refused({ KEY_ENCRYPTION_KEY: `${good}AAAA` }, 'KEY_ENCRYPTION_KEY', good);
  refused({ KEY_ENCRYPTION_KEY: 'not base64 at all!' }, 'KEY_ENCRYPTION_KEY', 'not base64');
  refused({ KEY_ENCRYPTION_KEY: good, KEY_ENCRYPTION_KEYS_PREVIOUS: `${oldKey.toBase64()},${short}` }, 'KEY_ENCRYPTION_KEYS_PREVIOUS', short);
  refused({ KEY_ENCRYPTION_KEYS_PREVIOUS: oldKey.toBase64() }, 'KEY_ENCRYPTION_KEYS_PREVIOUS', oldKey.toBase64());
});
