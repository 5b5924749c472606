import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyObject, X509Certificate, createPrivateKey, generateKeyPairSync, webcrypto } from 'node:crypto';
import { createTestCa, selfSigned, type TestCert } from '../../test-support/certs.js';
import { CertificateError, validateCertificate } from '../src/core/certificate.js';

import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

const DAY_MS = 24 * 60 * 60 * 1000;

const ecCa = await createTestCa({ keyType: 'ec', commonName: 'Test EC CA' });
const ecLeaf = await ecCa.issue({ sans: ['app.example.com', 'www.example.com'] });

function pemBody(pem: string): string {
  return pem
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('-----'))
    .join('');
}

// Any 12-character run of the base64 body is far too specific to appear by chance.
function assertNoKeyMaterial(message: string, keyPem: string): void {
  const body = pemBody(keyPem);
  assert.ok(body.length > 0, 'nothing to check for');
  const width = Math.min(12, body.length);
  for (let i = 0; i + width <= body.length; i += 4) {
    const chunk = body.slice(i, i + width);
    assert.ok(!message.includes(chunk), `error message leaks key material: ${message}`);
  }
}

function expectReason(
  input: { domain: string; cert: string; key: string },
  reason: string | RegExp,
  now?: Date,
): CertificateError {
  let caught: unknown;
  try {
    validateCertificate(input, now);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof CertificateError, `expected CertificateError, got ${String(caught)}`);
  if (typeof reason === 'string') {
    assert.equal(caught.reason, reason);
  } else {
    assert.match(caught.reason, reason);
  }
  assert.equal(caught.message, caught.reason);
  assertNoKeyMaterial(caught.message, input.key);
  return caught;
}

function pkcs8Pem(key: webcrypto.CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }).toString();
}

function sameKey(a: string, b: string): boolean {
  const der = (pem: string): Buffer =>
    createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' });
  return der(a).equals(der(b));
}

test('accepts a valid ECDSA certificate and returns normalized data', () => {
  const result = validateCertificate({ domain: 'app.example.com', cert: ecLeaf.chainPem, key: ecLeaf.keyPem });
  const leaf = new X509Certificate(ecLeaf.certPem);
  assert.equal(result.domain, 'app.example.com');
  assert.equal(result.keyType, 'ec');
  assert.deepEqual(result.sans, ['app.example.com', 'www.example.com']);
  assert.equal(result.fingerprint256, leaf.fingerprint256);
  assert.equal(result.chainPem, ecLeaf.certPem + ecCa.certPem);
  assert.match(result.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  assert.ok(sameKey(result.keyPem, ecLeaf.keyPem));
  assert.equal(result.notBefore, new Date(leaf.validFrom).toISOString());
  assert.equal(result.notAfter, new Date(leaf.validTo).toISOString());
});

test('accepts a valid RSA chain, keeps its order and normalizes the PEM', async () => {
  const rsaCa = await createTestCa({ keyType: 'rsa', commonName: 'Test RSA CA' });
  const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000 - 3 * DAY_MS);
  const notAfter = new Date(notBefore.getTime() + 30 * DAY_MS);
  const leaf = await rsaCa.issue({ sans: ['Shop.Example.com'], keyType: 'rsa', notBefore, notAfter });

  // CRLF line endings, indentation and blank lines are what users paste from
  // Windows tools and web forms; the output must not carry any of it.
  const messy = `\r\n  ${leaf.certPem.replace(/\n/g, '\r\n')}\r\n\r\n${rsaCa.certPem}\n\n`;
  const result = validateCertificate({ domain: 'SHOP.example.com', cert: messy, key: leaf.keyPem });

  assert.equal(result.domain, 'shop.example.com');
  assert.equal(result.keyType, 'rsa');
  assert.deepEqual(result.sans, ['shop.example.com']);
  assert.equal(result.chainPem, leaf.certPem + rsaCa.certPem);
  const blocks = result.chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n/g) ?? [];
  assert.equal(blocks.length, 2);
  assert.equal(new X509Certificate(blocks[0] ?? '').fingerprint256, new X509Certificate(leaf.certPem).fingerprint256);
  assert.equal(new X509Certificate(blocks[1] ?? '').fingerprint256, new X509Certificate(rsaCa.certPem).fingerprint256);
  assert.equal(result.fingerprint256, new X509Certificate(leaf.certPem).fingerprint256);
  assert.match(result.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  assert.equal(result.notBefore, notBefore.toISOString());
  assert.equal(result.notAfter, notAfter.toISOString());
  assert.ok(sameKey(result.keyPem, leaf.keyPem));
});

test('re-exports SEC1 and PKCS#1 keys as PKCS#8', async () => {
  const sec1 = createPrivateKey(ecLeaf.keyPem).export({ type: 'sec1', format: 'pem' }).toString();
  assert.match(sec1, /BEGIN EC PRIVATE KEY/);
  const ecResult = validateCertificate({ domain: 'app.example.com', cert: ecLeaf.certPem, key: sec1 });
  assert.match(ecResult.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  assert.ok(sameKey(ecResult.keyPem, ecLeaf.keyPem));

  const rsa = await selfSigned({ sans: ['rsa.example.com'], keyType: 'rsa' });
  const pkcs1 = createPrivateKey(rsa.keyPem).export({ type: 'pkcs1', format: 'pem' }).toString();
  assert.match(pkcs1, /BEGIN RSA PRIVATE KEY/);
  const rsaResult = validateCertificate({ domain: 'rsa.example.com', cert: rsa.certPem, key: pkcs1 });
  assert.match(rsaResult.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  assert.equal(rsaResult.keyType, 'rsa');
});

test('tolerates the EC PARAMETERS block openssl ecparam writes before the key', () => {
  const sec1 = createPrivateKey(ecLeaf.keyPem).export({ type: 'sec1', format: 'pem' }).toString();
  const withParams = `-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n${sec1}`;
  const result = validateCertificate({ domain: 'app.example.com', cert: ecLeaf.certPem, key: withParams });
  assert.equal(result.keyType, 'ec');
});

test('accepts a P-384 key', async () => {
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=p384.example.com',
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' },
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'p384.example.com' }])],
  });
  const result = validateCertificate({
    domain: 'p384.example.com',
    cert: cert.toString('pem'),
    key: pkcs8Pem(keys.privateKey),
  });
  assert.equal(result.keyType, 'ec');
});

test('wildcard domain is covered by the identical wildcard SAN', async () => {
  const wild = await ecCa.issue({ sans: ['*.example.org'] });
  const result = validateCertificate({ domain: '*.example.org', cert: wild.chainPem, key: wild.keyPem });
  assert.equal(result.domain, '*.example.org');
  assert.deepEqual(result.sans, ['*.example.org']);
});

test('wildcard domain is not covered by a concrete SAN', async () => {
  const concrete = await ecCa.issue({ sans: ['a.example.org'] });
  expectReason(
    { domain: '*.example.org', cert: concrete.chainPem, key: concrete.keyPem },
    'the certificate does not cover *.example.org (it covers: a.example.org)',
  );
});

test('plain domain one label under a wildcard SAN is covered', async () => {
  const wild = await ecCa.issue({ sans: ['*.Example.NET'] });
  const result = validateCertificate({ domain: 'shop.example.net', cert: wild.chainPem, key: wild.keyPem });
  assert.equal(result.domain, 'shop.example.net');
  assert.deepEqual(result.sans, ['*.example.net']);
});

test('wildcard SAN does not cover two labels deep', async () => {
  const wild = await ecCa.issue({ sans: ['*.example.com'] });
  expectReason(
    { domain: 'a.b.example.com', cert: wild.chainPem, key: wild.keyPem },
    'the certificate does not cover a.b.example.com (it covers: *.example.com)',
  );
});

test('wildcard SAN does not cover the apex', async () => {
  const wild = await ecCa.issue({ sans: ['*.example.com'] });
  expectReason(
    { domain: 'example.com', cert: wild.chainPem, key: wild.keyPem },
    'the certificate does not cover example.com (it covers: *.example.com)',
  );
});

test('wrong domain lists what the certificate covers', () => {
  expectReason(
    { domain: 'other.example.com', cert: ecLeaf.chainPem, key: ecLeaf.keyPem },
    'the certificate does not cover other.example.com (it covers: app.example.com, www.example.com)',
  );
});

test('the covered-names list is capped at 10', async () => {
  const sans = Array.from({ length: 12 }, (_, i) => `h${i}.example.com`);
  const many = await ecCa.issue({ sans });
  expectReason(
    { domain: 'other.example.com', cert: many.chainPem, key: many.keyPem },
    `the certificate does not cover other.example.com (it covers: ${sans.slice(0, 10).join(', ')}, and 2 more)`,
  );
});

test('SAN values that Node quotes are parsed, not split', async () => {
  const odd = await ecCa.issue({ sans: ['x,y.example.com', 'good.example.com'] });
  assert.match(new X509Certificate(odd.certPem).subjectAltName ?? '', /DNS:"/);
  const result = validateCertificate({ domain: 'good.example.com', cert: odd.chainPem, key: odd.keyPem });
  assert.deepEqual(result.sans, ['x,y.example.com', 'good.example.com']);
  expectReason(
    { domain: 'y.example.com', cert: odd.chainPem, key: odd.keyPem },
    'the certificate does not cover y.example.com (it covers: x,y.example.com, good.example.com)',
  );
});

test('a certificate without DNS SANs is refused even if the CN matches', async () => {
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=cn-only.example.com',
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  expectReason(
    { domain: 'cn-only.example.com', cert: cert.toString('pem'), key: pkcs8Pem(keys.privateKey) },
    'the certificate has no DNS subjectAltName',
  );
});

test('key of another certificate is refused', async () => {
  const other = await ecCa.issue({ sans: ['app.example.com'] });
  expectReason(
    { domain: 'app.example.com', cert: ecLeaf.chainPem, key: other.keyPem },
    'the private key does not match the certificate',
  );
});

test('expired certificate is refused with its expiry date', async () => {
  const notAfter = new Date(Math.floor(Date.now() / 1000) * 1000 - 10 * DAY_MS);
  const old = await ecCa.issue({
    sans: ['app.example.com'],
    notBefore: new Date(notAfter.getTime() - 90 * DAY_MS),
    notAfter,
  });
  expectReason(
    { domain: 'app.example.com', cert: old.chainPem, key: old.keyPem },
    `the certificate expired on ${notAfter.toISOString()}`,
  );
});

test('not-yet-valid certificate is refused with its start date', async () => {
  const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000 + 5 * DAY_MS);
  const future = await ecCa.issue({
    sans: ['app.example.com'],
    notBefore,
    notAfter: new Date(notBefore.getTime() + 90 * DAY_MS),
  });
  expectReason(
    { domain: 'app.example.com', cert: future.chainPem, key: future.keyPem },
    `the certificate is not valid before ${notBefore.toISOString()}`,
  );
});

test('validity is judged at the supplied time', () => {
  const input = { domain: 'app.example.com', cert: ecLeaf.chainPem, key: ecLeaf.keyPem };
  const leaf = new X509Certificate(ecLeaf.certPem);
  const notAfter = new Date(leaf.validTo);
  const notBefore = new Date(leaf.validFrom);
  expectReason(input, `the certificate expired on ${notAfter.toISOString()}`, new Date(notAfter.getTime() + 1000));
  expectReason(input, `the certificate is not valid before ${notBefore.toISOString()}`, new Date(notBefore.getTime() - 1000));
  assert.equal(validateCertificate(input, notAfter).notAfter, notAfter.toISOString());
});

test('chain with the CA first is reported as out of order', () => {
  expectReason(
    { domain: 'app.example.com', cert: ecCa.certPem + ecLeaf.certPem, key: ecLeaf.keyPem },
    'the chain is out of order: certificate 1 is not issued by certificate 2',
  );
});

test('an unrelated intermediate is reported at its position', async () => {
  const otherCa = await createTestCa({ commonName: 'Other CA' });
  expectReason(
    { domain: 'app.example.com', cert: ecLeaf.certPem + ecCa.certPem + otherCa.certPem, key: ecLeaf.keyPem },
    'the chain is out of order: certificate 2 is not issued by certificate 3',
  );
});

test('an impostor issuer with the right name and key id but another key is refused', async () => {
  const real = new x509.X509Certificate(ecCa.certPem);
  const realSki = real.getExtension(x509.SubjectKeyIdentifierExtension);
  assert.ok(realSki);
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const impostor = await x509.X509CertificateGenerator.createSelfSigned({
    name: real.subject,
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      new x509.SubjectKeyIdentifierExtension(realSki.keyId),
    ],
  });
  const impostorPem = impostor.toString('pem');
  assert.ok(new X509Certificate(ecLeaf.certPem).checkIssued(new X509Certificate(impostorPem)));
  expectReason(
    { domain: 'app.example.com', cert: ecLeaf.certPem + impostorPem, key: ecLeaf.keyPem },
    'certificate 1 of the chain is not signed by the key of certificate 2',
  );
});

test('garbage certificate text is refused', () => {
  expectReason(
    { domain: 'app.example.com', cert: 'hello, this is my certificate', key: ecLeaf.keyPem },
    'no certificate found: submit the PEM certificate chain, starting with -----BEGIN CERTIFICATE-----',
  );
  expectReason(
    { domain: 'app.example.com', cert: `${ecLeaf.certPem}some notes\n${ecCa.certPem}`, key: ecLeaf.keyPem },
    'the certificate field contains text outside the -----BEGIN CERTIFICATE----- blocks: submit only the PEM certificate chain',
  );
  expectReason(
    { domain: 'app.example.com', cert: '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n', key: ecLeaf.keyPem },
    'the certificate cannot be parsed',
  );
  expectReason(
    { domain: 'app.example.com', cert: `${ecLeaf.certPem}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n`, key: ecLeaf.keyPem },
    'certificate 2 of the chain cannot be parsed',
  );
  expectReason(
    { domain: 'app.example.com', cert: ecLeaf.certPem.replace('-----END CERTIFICATE-----\n', ''), key: ecLeaf.keyPem },
    'the certificate field contains an incomplete PEM block (-----BEGIN CERTIFICATE----- without a matching -----END CERTIFICATE----- line)',
  );
  expectReason(
    { domain: 'app.example.com', cert: ecLeaf.certPem.repeat(11), key: ecLeaf.keyPem },
    'the chain has 11 certificates: at most 10 are allowed',
  );
});

test('a private key pasted into the certificate field is refused without echoing it', () => {
  const err = expectReason(
    { domain: 'app.example.com', cert: ecLeaf.keyPem + ecLeaf.certPem, key: ecLeaf.keyPem },
    'the certificate field contains a PRIVATE KEY block: put the private key in the key field and only certificates in the certificate field',
  );
  assertNoKeyMaterial(err.message, ecLeaf.keyPem);
});

test('garbage in the key field is refused', () => {
  expectReason(
    { domain: 'app.example.com', cert: ecLeaf.chainPem, key: 'my key is secret' },
    'no private key found: submit the PEM private key, starting with -----BEGIN PRIVATE KEY-----',
  );
  const corrupted = ecLeaf.keyPem.replace(/\n[A-Za-z0-9+/]{20}/, '\n!!!!!!!!!!!!!!!!!!!!');
  assert.notEqual(corrupted, ecLeaf.keyPem);
  expectReason({ domain: 'app.example.com', cert: ecLeaf.chainPem, key: corrupted }, 'the private key cannot be parsed');
  expectReason(
    { domain: 'app.example.com', cert: ecLeaf.chainPem, key: `${ecLeaf.keyPem}trailing words\n` },
    'the key field contains text outside the PEM private key block: submit only the PEM private key',
  );
  expectReason(
    { domain: 'app.example.com', cert: ecLeaf.chainPem, key: ecLeaf.keyPem + ecLeaf.keyPem },
    'the key field contains 2 private keys: submit exactly one',
  );
  expectReason(
    { domain: 'app.example.com', cert: ecLeaf.chainPem, key: ecLeaf.certPem },
    'the key field contains a CERTIFICATE block: put certificates in the certificate field and only the private key in the key field',
  );
});

test('encrypted keys are refused in both PKCS#8 and traditional form', () => {
  const pkcs8 = generateKeyPairSync('ec', {
    namedCurve: 'P-256',
    privateKeyEncoding: { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  }).privateKey;
  assert.match(pkcs8, /BEGIN ENCRYPTED PRIVATE KEY/);
  expectReason(
    { domain: 'app.example.com', cert: ecLeaf.chainPem, key: pkcs8 },
    'the private key is encrypted: submit it unencrypted',
  );

  const sec1 = generateKeyPairSync('ec', {
    namedCurve: 'P-256',
    privateKeyEncoding: { type: 'sec1', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  }).privateKey;
  assert.match(sec1, /Proc-Type: 4,ENCRYPTED/);
  expectReason(
    { domain: 'app.example.com', cert: ecLeaf.chainPem, key: sec1 },
    'the private key is encrypted: submit it unencrypted',
  );
});

test('unsupported key types are refused before the key is matched', () => {
  const pem = (key: ReturnType<typeof generateKeyPairSync>['privateKey']): string =>
    key.export({ type: 'pkcs8', format: 'pem' }).toString();

  expectReason(
    { domain: 'app.example.com', cert: ecLeaf.chainPem, key: pem(generateKeyPairSync('ed25519').privateKey) },
    'the private key type ed25519 is not supported: use an ECDSA (P-256 or P-384) or RSA (2048 bits or more) key',
  );
  expectReason(
    { domain: 'app.example.com', cert: ecLeaf.chainPem, key: pem(generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey) },
    'the RSA private key is 1024 bits: at least 2048 bits are required',
  );
  expectReason(
    { domain: 'app.example.com', cert: ecLeaf.chainPem, key: pem(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey) },
    'the EC private key uses curve secp256k1: only P-256 and P-384 are accepted',
  );
});

test('no failure reason contains key material', async () => {
  const rsa: TestCert = await selfSigned({ sans: ['rsa.example.com'], keyType: 'rsa' });
  const sec1 = createPrivateKey(ecLeaf.keyPem).export({ type: 'sec1', format: 'pem' }).toString();
  const cases: Array<{ domain: string; cert: string; key: string }> = [
    { domain: 'app.example.com', cert: ecLeaf.keyPem, key: ecLeaf.keyPem },
    { domain: 'app.example.com', cert: sec1 + ecLeaf.certPem, key: sec1 },
    { domain: 'app.example.com', cert: ecLeaf.chainPem, key: rsa.keyPem },
    { domain: 'app.example.com', cert: rsa.certPem, key: rsa.keyPem },
    { domain: 'app.example.com', cert: ecLeaf.chainPem, key: rsa.keyPem.replace('-----END PRIVATE KEY-----', '') },
    { domain: 'app.example.com', cert: ecLeaf.chainPem, key: rsa.keyPem.replace(/^-----BEGIN PRIVATE KEY-----\n/, '') },
    { domain: 'app.example.com', cert: ecLeaf.chainPem, key: rsa.keyPem.replace(/\n[A-Za-z0-9+/]{8}/, '\n########') },
    { domain: 'app.example.com', cert: ecLeaf.chainPem, key: `-----BEGIN PRIVATE KEY-----\n${pemBody(rsa.keyPem).slice(0, 100)}\n-----END PRIVATE KEY-----\n` },
  ];
  for (const input of cases) {
    let caught: unknown;
    try {
      validateCertificate(input);
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof CertificateError, `expected CertificateError for ${input.key.slice(0, 30)}…`);
    assertNoKeyMaterial(caught.message, rsa.keyPem);
    assertNoKeyMaterial(caught.message, ecLeaf.keyPem);
    assertNoKeyMaterial(caught.message, sec1);
  }
});

test('malformed domains are refused', () => {
  expectReason(
    { domain: 'a.*.example.com', cert: ecLeaf.chainPem, key: ecLeaf.keyPem },
    /^the domain "a\.\*\.example\.com" is not a valid host name/,
  );
  expectReason({ domain: '', cert: ecLeaf.chainPem, key: ecLeaf.keyPem }, /^the domain "" is not a valid host name/);
});
