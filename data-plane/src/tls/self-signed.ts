/**
 * The router's fallback certificate when ROUTER_DEFAULT_CERT is not set: self-signed RSA
 * 2048, generated at start. RSA, not ECDSA, on purpose: Node's SNI switch *adds* the chosen
 * certificate to the connection next to the server's own (one slot per key type) rather than
 * replacing it, and OpenSSL prefers an ECDSA certificate when the client supports both; an
 * ECDSA default would therefore shadow every RSA certificate from Redis. An RSA default is
 * replaced by an RSA certificate and loses to an ECDSA one, so both kinds are served. A client reaching it (unknown SNI, no SNI, an IP) gets a
 * certificate no browser trusts, which is the honest answer; what matters is that the
 * handshake completes so the request can still be routed by Host (and `curl -k` works).
 *
 * Built with node:crypto and the few DER encodings an X.509 v1 certificate needs, so the
 * runtime carries no certificate library.
 */
import { X509Certificate, generateKeyPairSync, randomBytes, sign } from 'node:crypto';

export interface PemPair {
  cert: string;
  key: string;
}

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), length(body.length), body]);
}

const seq = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out: number[] = [40 * parts[0]! + parts[1]!];
  for (const part of parts.slice(2)) {
    const chunk: number[] = [part & 0x7f];
    for (let v = Math.floor(part / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** UTCTime (YYMMDDHHMMSSZ) until 2049, GeneralizedTime after, as RFC 5280 requires. */
function time(date: Date): Buffer {
  const iso = date.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return date.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(`${iso.slice(2)}Z`, 'ascii')) : tlv(0x18, Buffer.from(`${iso}Z`, 'ascii'));
}

function name(commonName: string): Buffer {
  return seq(tlv(0x31, seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from(commonName, 'utf8')))));
}

const SHA256_WITH_RSA = '1.2.840.113549.1.1.11';
const DAY_MS = 86_400_000;

export function generateSelfSigned(commonName: string, validDays = 3650): PemPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  // Positive, non-zero, at most 20 bytes (RFC 5280).
  const serial = Buffer.concat([Buffer.from([0x01]), randomBytes(15)]);
  const algorithm = seq(oid(SHA256_WITH_RSA), tlv(0x05, Buffer.alloc(0)));
  const now = Date.now();
  const tbs = seq(
    tlv(0x02, serial),
    algorithm,
    name(commonName),
    seq(time(new Date(now - DAY_MS)), time(new Date(now + validDays * DAY_MS))),
    name(commonName),
    publicKey.export({ type: 'spki', format: 'der' }),
  );
  // PKCS#1 v1.5, node:crypto's default for RSA keys.
  const signature = sign('sha256', tbs, privateKey);
  const der = seq(tbs, algorithm, tlv(0x03, Buffer.concat([Buffer.from([0]), signature])));
  // Parsing it back proves the encoding before a client ever sees it.
  const cert = new X509Certificate(der).toString();
  return { cert, key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}
