import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';

export interface ValidatedCertificate {
  domain: string;
  chainPem: string;
  keyPem: string;
  keyType: 'ec' | 'rsa';
  notBefore: string;
  notAfter: string;
  fingerprint256: string;
  sans: string[];
}

/**
 * The reason is shown to whoever submitted the certificate, so it must say what
 * to fix and must never echo key material back.
 */
export class CertificateError extends Error {
  readonly reason: string;

  constructor(reason: string) {
    super(reason);
    this.name = 'CertificateError';
    this.reason = reason;
  }
}

const MAX_CHAIN_LENGTH = 10;
// Generous for a 10-certificate RSA-4096 chain, small enough that a hostile
// submission cannot make the PEM scanning or OpenSSL parsing expensive.
const MAX_CERT_INPUT_CHARS = 128 * 1024;
const MAX_KEY_INPUT_CHARS = 32 * 1024;
const MAX_SANS_IN_REASON = 10;
const MIN_RSA_BITS = 2048;
// Node reports OpenSSL's names: prime256v1 is P-256, secp384r1 is P-384.
const ACCEPTED_EC_CURVES: ReadonlySet<string> = new Set(['prime256v1', 'secp384r1']);

interface PemBlock {
  label: string;
  text: string;
}

// Labels are restricted to what RFC 7468 allows so that a label captured here can
// be quoted in an error without risk of it containing submitted secret data.
const PEM_BEGIN = /-----BEGIN ([A-Z0-9][A-Z0-9 ]{0,40})-----/y;

interface PemScan {
  blocks: PemBlock[];
  /** Everything not inside a complete block; must be blank for a clean submission. */
  outside: string;
  /** Label of a block that starts but never ends, which stops the scan. */
  unterminated?: string;
}

// A hand-written scan instead of one global regex with a lazy body: each END
// search either succeeds and moves past it or ends the scan, so hostile input
// full of BEGIN lines stays linear.
function scanPem(text: string): PemScan {
  const blocks: PemBlock[] = [];
  let outside = '';
  let pos = 0;
  for (;;) {
    const begin = text.indexOf('-----BEGIN ', pos);
    if (begin < 0) break;
    PEM_BEGIN.lastIndex = begin;
    const m = PEM_BEGIN.exec(text);
    if (!m) {
      outside += text.slice(pos, begin + 1);
      pos = begin + 1;
      continue;
    }
    const label = m[1] ?? '';
    const endMarker = `-----END ${label}-----`;
    const endAt = text.indexOf(endMarker, begin + m[0].length);
    if (endAt < 0) {
      return { blocks, outside: outside + text.slice(pos), unterminated: label };
    }
    const end = endAt + endMarker.length;
    outside += text.slice(pos, begin);
    blocks.push({ label, text: text.slice(begin, end) });
    pos = end;
  }
  return { blocks, outside: outside + text.slice(pos) };
}

function unterminatedReason(field: 'certificate' | 'key', label: string): string {
  return `the ${field} field contains an incomplete PEM block (-----BEGIN ${label}----- without a matching -----END ${label}----- line)`;
}

function parseChain(certText: string): X509Certificate[] {
  if (certText.length > MAX_CERT_INPUT_CHARS) {
    throw new CertificateError(`the certificate chain is larger than ${MAX_CERT_INPUT_CHARS} characters`);
  }
  const { blocks, outside, unterminated } = scanPem(certText);

  // A private key in the certificate field is the most common paste mistake, so
  // name it specifically; the label alone is safe to echo, the body is not.
  const foreign = blocks.find((b) => b.label !== 'CERTIFICATE');
  if (foreign) {
    if (foreign.label.endsWith('PRIVATE KEY')) {
      throw new CertificateError(
        `the certificate field contains a ${foreign.label} block: put the private key in the key field and only certificates in the certificate field`,
      );
    }
    throw new CertificateError(
      `the certificate field contains a ${foreign.label} block: only -----BEGIN CERTIFICATE----- blocks are allowed`,
    );
  }
  if (unterminated !== undefined) {
    throw new CertificateError(unterminatedReason('certificate', unterminated));
  }
  if (blocks.length === 0) {
    throw new CertificateError(
      'no certificate found: submit the PEM certificate chain, starting with -----BEGIN CERTIFICATE-----',
    );
  }
  if (outside.trim() !== '') {
    throw new CertificateError(
      'the certificate field contains text outside the -----BEGIN CERTIFICATE----- blocks: submit only the PEM certificate chain',
    );
  }
  if (blocks.length > MAX_CHAIN_LENGTH) {
    throw new CertificateError(
      `the chain has ${blocks.length} certificates: at most ${MAX_CHAIN_LENGTH} are allowed`,
    );
  }

  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block.text);
    } catch {
      throw new CertificateError(
        blocks.length === 1
          ? 'the certificate cannot be parsed'
          : `certificate ${i + 1} of the chain cannot be parsed`,
      );
    }
  });
}

const ACCEPTED_KEY_LABELS = new Set(['PRIVATE KEY', 'EC PRIVATE KEY', 'RSA PRIVATE KEY']);

function parsePrivateKey(keyText: string): KeyObject {
  if (keyText.length > MAX_KEY_INPUT_CHARS) {
    throw new CertificateError(`the private key is larger than ${MAX_KEY_INPUT_CHARS} characters`);
  }
  const { blocks, outside, unterminated } = scanPem(keyText);

  if (blocks.some((b) => b.label === 'ENCRYPTED PRIVATE KEY') || unterminated === 'ENCRYPTED PRIVATE KEY') {
    throw new CertificateError('the private key is encrypted: submit it unencrypted');
  }
  // `openssl ecparam -genkey` emits an EC PARAMETERS block before the key; it
  // carries nothing the key does not, so tolerate it rather than bounce users.
  const relevant = blocks.filter((b) => b.label !== 'EC PARAMETERS');
  const foreign = relevant.find((b) => !ACCEPTED_KEY_LABELS.has(b.label));
  if (foreign) {
    if (foreign.label === 'CERTIFICATE') {
      throw new CertificateError(
        'the key field contains a CERTIFICATE block: put certificates in the certificate field and only the private key in the key field',
      );
    }
    throw new CertificateError(
      `the key field contains a ${foreign.label} block: submit a PEM PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY`,
    );
  }
  if (unterminated !== undefined) {
    throw new CertificateError(unterminatedReason('key', unterminated));
  }
  const [only, ...extra] = relevant;
  if (!only) {
    throw new CertificateError(
      'no private key found: submit the PEM private key, starting with -----BEGIN PRIVATE KEY-----',
    );
  }
  if (outside.trim() !== '') {
    throw new CertificateError(
      'the key field contains text outside the PEM private key block: submit only the PEM private key',
    );
  }
  if (extra.length > 0) {
    throw new CertificateError(
      `the key field contains ${relevant.length} private keys: submit exactly one`,
    );
  }
  // Traditional (PKCS#1 / SEC1) keys signal encryption with a header instead of
  // a distinct label.
  if (/^Proc-Type:\s*4\s*,\s*ENCRYPTED\s*$/im.test(only.text)) {
    throw new CertificateError('the private key is encrypted: submit it unencrypted');
  }

  try {
    return createPrivateKey({ key: only.text, format: 'pem' });
  } catch {
    // OpenSSL's message adds nothing actionable for the user, and keeping it out
    // guarantees no decoder diagnostics about the key leak into the reason.
    throw new CertificateError('the private key cannot be parsed');
  }
}

function checkKeyType(key: KeyObject): 'ec' | 'rsa' {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (type === 'ec') {
    const curve = details.namedCurve;
    if (curve === undefined || !ACCEPTED_EC_CURVES.has(curve)) {
      throw new CertificateError(
        `the EC private key uses curve ${curve ?? 'unknown'}: only P-256 and P-384 are accepted`,
      );
    }
    return 'ec';
  }
  if (type === 'rsa') {
    const bits = details.modulusLength;
    if (bits === undefined || bits < MIN_RSA_BITS) {
      throw new CertificateError(
        bits === undefined
        ? `the RSA private key size cannot be determined: use an RSA key of at least ${MIN_RSA_BITS} bits`
        : `the RSA private key is ${bits} bits: at least ${MIN_RSA_BITS} bits are required`,
      );
    }
    return 'rsa';
  }
  throw new CertificateError(
    `the private key type ${type ?? 'unknown'} is not supported: use an ECDSA (P-256 or P-384) or RSA (${MIN_RSA_BITS} bits or more) key`,
  );
}

const MONTHS: Record<string, number> = {
  Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11,
};

// Node 20 only exposes validFrom/validTo as OpenSSL's ASN1_TIME_print text
// ("Jan  2 03:04:05 2030 GMT"); parse it explicitly rather than trusting the
// engine's lenient Date parser.
function parseOpenSslTime(text: string): Date {
  const m = /^([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(?:\.\d+)? (\d{4}) GMT$/.exec(text.trim());
  const month = m ? MONTHS[m[1] ?? ''] : undefined;
  if (!m || month === undefined) {
    throw new CertificateError('the certificate validity dates cannot be read');
  }
  return new Date(Date.UTC(Number(m[6]), month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5])));
}

/**
 * Node renders subjectAltName as "DNS:a, DNS:b", but since the 2022 security
 * fixes it JSON-quotes any value containing a separator or unusual character
 * (e.g. `DNS:"a,b"`), so splitting on ", " alone is not safe.
 */
function parseSubjectAltName(text: string): Array<{ type: string; value: string }> {
  const entries: Array<{ type: string; value: string }> = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && (text[i] === ' ' || text[i] === ',')) i++;
    if (i >= text.length) break;
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const type = text.slice(i, colon);
    i = colon + 1;
    let value: string;
    if (text[i] === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') {
        j += text[j] === '\\' ? 2 : 1;
      }
      const quoted = text.slice(i, j + 1);
      try {
        value = JSON.parse(quoted) as string;
      } catch {
        value = quoted.slice(1, -1);
      }
      i = j + 1;
    } else {
      const sep = text.indexOf(', ', i);
      const end = sep < 0 ? text.length : sep;
      value = text.slice(i, end);
      i = end;
    }
    entries.push({ type, value });
  }
  return entries;
}

// Only rejects what could never match a SAN sensibly; whether the platform
// accepts the domain at all is decided elsewhere.
function isValidHostName(name: string): boolean {
  if (name.length === 0 || name.length > 253 || name === '*') return false;
  const labels = name.split('.');
  return labels.every(
    (label, idx) =>
      (idx === 0 && label === '*') || /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/.test(label),
  );
}

/** RFC 6125 §6.4.3 restricted to the form CAs actually issue: "*" as the whole leftmost label. */
function sanCoversDomain(san: string, domain: string): boolean {
  if (domain.startsWith('*.')) {
    return san === domain;
  }
  if (san === domain) return true;
  if (!san.startsWith('*.')) return false;
  const suffix = san.slice(1);
  if (!domain.endsWith(suffix)) return false;
  const label = domain.slice(0, domain.length - suffix.length);
  return label.length > 0 && !label.includes('.');
}

export function validateCertificate(
  input: { domain: string; cert: string; key: string },
  now: Date = new Date(),
): ValidatedCertificate {
  // Callers feed this from JSON, so the declared types are not a guarantee.
  if (typeof input.domain !== 'string') throw new CertificateError('the domain must be a string');
  if (typeof input.cert !== 'string') throw new CertificateError('the certificate must be a PEM string');
  if (typeof input.key !== 'string') throw new CertificateError('the private key must be a PEM string');

  const domain = input.domain.trim().toLowerCase();
  if (!isValidHostName(domain)) {
    throw new CertificateError(
      `the domain ${JSON.stringify(input.domain.slice(0, 260))} is not a valid host name (wildcards only as "*.example.org")`,
    );
  }

  const chain = parseChain(input.cert);
  const leaf = chain[0];
  if (!leaf) {
    throw new CertificateError('no certificate found');
  }

  const key = parsePrivateKey(input.key);
  const keyType = checkKeyType(key);

  for (let i = 0; i + 1 < chain.length; i++) {
    const child = chain[i];
    const parent = chain[i + 1];
    if (!child || !parent) continue;
    if (!child.checkIssued(parent)) {
      throw new CertificateError(
        `the chain is out of order: certificate ${i + 1} is not issued by certificate ${i + 2}`,
      );
    }
    // checkIssued only compares names and key identifiers; a forged or mixed-up
    // intermediate with the right name would otherwise pass.
    if (!child.verify(parent.publicKey)) {
      throw new CertificateError(
        `certificate ${i + 1} of the chain is not signed by the key of certificate ${i + 2}`,
      );
    }
  }

  // Checked after the chain so that a chain pasted root-first is reported as an
  // ordering problem, which is what the user has to fix, not as a key mismatch.
  if (!leaf.checkPrivateKey(key)) {
    throw new CertificateError('the private key does not match the certificate');
  }

  const notBefore = parseOpenSslTime(leaf.validFrom);
  const notAfter = parseOpenSslTime(leaf.validTo);
  if (now.getTime() < notBefore.getTime()) {
    throw new CertificateError(`the certificate is not valid before ${notBefore.toISOString()}`);
  }
  if (now.getTime() > notAfter.getTime()) {
    throw new CertificateError(`the certificate expired on ${notAfter.toISOString()}`);
  }

  const sans = parseSubjectAltName(leaf.subjectAltName ?? '')
    .filter((e) => e.type === 'DNS')
    .map((e) => e.value.toLowerCase());
  if (sans.length === 0) {
    throw new CertificateError('the certificate has no DNS subjectAltName');
  }
  if (!sans.some((san) => sanCoversDomain(san, domain))) {
    const shown = sans.slice(0, MAX_SANS_IN_REASON).join(', ');
    const more = sans.length > MAX_SANS_IN_REASON ? `, and ${sans.length - MAX_SANS_IN_REASON} more` : '';
    throw new CertificateError(`the certificate does not cover ${domain} (it covers: ${shown}${more})`);
  }

  return {
    domain,
    chainPem: chain.map((c) => c.toString()).join(''),
    keyPem: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
    keyType,
    notBefore: notBefore.toISOString(),
    notAfter: notAfter.toISOString(),
    fingerprint256: leaf.fingerprint256,
    sans,
  };
}
