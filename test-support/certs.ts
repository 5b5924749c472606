import { KeyObject, X509Certificate as NodeX509Certificate, randomBytes, webcrypto } from 'node:crypto';
// @peculiar/x509 resolves its providers through tsyringe, which needs the Reflect metadata
// polyfill loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

export interface TestCert {
  certPem: string;
  keyPem: string;
  /** Leaf first, then the issuing CA; for a self-signed cert just the cert. */
  chainPem: string;
}

export interface IssueOptions {
  sans: string[];
  keyType?: 'ec' | 'rsa';
  notBefore?: Date;
  notAfter?: Date;
  commonName?: string;
  /** The leaf's key pair (of `keyType`), e.g. one shared by many certificates; default a new one. */
  keys?: webcrypto.CryptoKeyPair;
}

export interface TestCa {
  certPem: string;
  keyPem: string;
  issue(opts: IssueOptions): Promise<TestCert>;
}

// Set explicitly instead of relying on the library's global auto-detection,
// which depends on how the runtime exposes `crypto`.
x509.cryptoProvider.set(webcrypto);

type KeyType = 'ec' | 'rsa';
type WebCryptoKeyPair = webcrypto.CryptoKeyPair;

const DAY_MS = 24 * 60 * 60 * 1000;

function keyAlgorithm(keyType: KeyType): webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams {
  return keyType === 'ec'
    ? { name: 'ECDSA', namedCurve: 'P-256' }
    : {
        name: 'RSASSA-PKCS1-v1_5',
        modulusLength: 2048,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: 'SHA-256',
      };
}

// The signature algorithm follows the issuer's key, not the subject's.
function signingAlgorithm(issuerKeyType: KeyType): webcrypto.Algorithm | webcrypto.EcdsaParams {
  return issuerKeyType === 'ec'
    ? { name: 'ECDSA', hash: 'SHA-256' }
    : { name: 'RSASSA-PKCS1-v1_5' };
}

export async function generateKeys(keyType: KeyType): Promise<WebCryptoKeyPair> {
  return webcrypto.subtle.generateKey(keyAlgorithm(keyType), true, ['sign', 'verify']);
}

// Round-tripping through node:crypto yields exactly the PEM layout OpenSSL
// writes (64-char lines, trailing newline), which is what node:tls expects.
function certToPem(cert: x509.X509Certificate): string {
  return new NodeX509Certificate(Buffer.from(cert.rawData)).toString();
}

function keyToPem(key: webcrypto.CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }).toString();
}

// A leading 0x01 byte keeps the DER INTEGER positive and non-zero as RFC 5280 requires.
function serialNumber(): string {
  return `01${randomBytes(15).toString('hex')}`;
}

function defaultValidity(opts: { notBefore?: Date; notAfter?: Date }): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  return {
    notBefore: opts.notBefore ?? new Date(now - DAY_MS),
    notAfter: opts.notAfter ?? new Date(now + 90 * DAY_MS),
  };
}

async function leafExtensions(
  opts: IssueOptions,
  keyType: KeyType,
  subjectKeys: WebCryptoKeyPair,
  issuerPublicKey: webcrypto.CryptoKey,
): Promise<x509.Extension[]> {
  const usages =
    keyType === 'rsa'
      ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment
      : x509.KeyUsageFlags.digitalSignature;
  return [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(usages, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
    new x509.SubjectAlternativeNameExtension(
      opts.sans.map((value) => ({ type: 'dns' as const, value })),
      false,
    ),
    await x509.SubjectKeyIdentifierExtension.create(subjectKeys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(issuerPublicKey),
  ];
}

function subjectName(commonName: string): string {
  // Commas or equals signs would be parsed as RDN syntax; tests only need a label.
  return `CN=${commonName.replace(/[,=+"\\<>;]/g, '_')}`;
}

export async function createTestCa(opts: { keyType?: KeyType; commonName?: string } = {}): Promise<TestCa> {
  const caKeyType = opts.keyType ?? 'ec';
  const caKeys = await generateKeys(caKeyType);
  const caName = subjectName(opts.commonName ?? 'Test CA');
  const now = Date.now();
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: caName,
    notBefore: new Date(now - 2 * DAY_MS),
    notAfter: new Date(now + 3650 * DAY_MS),
    keys: caKeys,
    signingAlgorithm: signingAlgorithm(caKeyType),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const caPem = certToPem(caCert);

  return {
    certPem: caPem,
    keyPem: keyToPem(caKeys.privateKey),
    async issue(issueOpts: IssueOptions): Promise<TestCert> {
      const keyType = issueOpts.keyType ?? 'ec';
      const leafKeys = issueOpts.keys ?? (await generateKeys(keyType));
      const { notBefore, notAfter } = defaultValidity(issueOpts);
      const leaf = await x509.X509CertificateGenerator.create({
        serialNumber: serialNumber(),
        subject: subjectName(issueOpts.commonName ?? issueOpts.sans[0] ?? 'test leaf'),
        issuer: caCert.subject,
        notBefore,
        notAfter,
        publicKey: leafKeys.publicKey,
        signingKey: caKeys.privateKey,
        signingAlgorithm: signingAlgorithm(caKeyType),
        extensions: await leafExtensions(issueOpts, keyType, leafKeys, caKeys.publicKey),
      });
      const certPem = certToPem(leaf);
      return { certPem, keyPem: keyToPem(leafKeys.privateKey), chainPem: certPem + caPem };
    },
  };
}

export async function selfSigned(opts: IssueOptions): Promise<TestCert> {
  const keyType = opts.keyType ?? 'ec';
  const keys = await generateKeys(keyType);
  const { notBefore, notAfter } = defaultValidity(opts);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: subjectName(opts.commonName ?? opts.sans[0] ?? 'test self-signed'),
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: signingAlgorithm(keyType),
    extensions: await leafExtensions(opts, keyType, keys, keys.publicKey),
  });
  const certPem = certToPem(cert);
  return { certPem, keyPem: keyToPem(keys.privateKey), chainPem: certPem };
}
