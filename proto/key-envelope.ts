/**
 * Private keys at rest: the envelope both the control plane (writer) and the routers
 * (readers) understand. AES-256-GCM under `KEY_ENCRYPTION_KEY`, with the certificate's
 * domain as additional authenticated data, so a record copied under another domain's key
 * does not decrypt. Each envelope names the key that sealed it (`kid`), which is what lets
 * the key be rotated: readers hold a ring of the current key and the previous ones.
 *
 * Nothing here ever puts key material in an error message, and the key classes hide their
 * bytes from JSON.stringify and util.inspect (private fields), so a logged config or ring
 * shows key ids only.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { KeyEnvelope } from './records.js';

export const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const BASE64_RE = /^[A-Za-z0-9+/_-]+={0,2}$/;

/** Never carries key material in its message: it names domains and key ids only. */
export class KeyEnvelopeError extends Error {
  override readonly name = 'KeyEnvelopeError';
}

/** One 32-byte key-encryption key and its public id. */
export class EncryptionKey {
  /** First 16 hex characters of SHA-256 of the key bytes: identifies the key, reveals nothing usable. */
  readonly kid: string;
  readonly #bytes: Buffer;

  private constructor(bytes: Buffer) {
    this.#bytes = Buffer.from(bytes);
    this.kid = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  }

  static fromBytes(bytes: Buffer): EncryptionKey {
    if (bytes.length !== KEY_BYTES) throw new KeyEnvelopeError(`a key-encryption key must be exactly ${KEY_BYTES} bytes`);
    return new EncryptionKey(bytes);
  }

  /** Standard or URL-safe base64 of exactly 32 bytes (`openssl rand -base64 32`). */
  static fromBase64(text: string): EncryptionKey {
    const trimmed = text.trim();
    if (!BASE64_RE.test(trimmed)) throw new KeyEnvelopeError(`must be the base64 of exactly ${KEY_BYTES} random bytes (openssl rand -base64 32)`);
    const bytes = Buffer.from(trimmed, 'base64');
    if (bytes.length !== KEY_BYTES) throw new KeyEnvelopeError(`must be the base64 of exactly ${KEY_BYTES} bytes, got ${bytes.length} bytes`);
    return new EncryptionKey(bytes);
  }

  static generate(): EncryptionKey {
    return new EncryptionKey(randomBytes(KEY_BYTES));
  }

  /** Only for whoever must hand the key to another process (npm start); never log it. */
  toBase64(): string {
    return this.#bytes.toString('base64');
  }

  /** @internal the cipher needs the bytes; kept off the object's enumerable surface. */
  bytes(): Buffer {
    return this.#bytes;
  }

  toJSON(): { kid: string } {
    return { kid: this.kid };
  }
}

/** The current key (which seals) and the previous ones (which still open), by kid. */
export class KeyRing {
  readonly current: EncryptionKey;
  readonly #byKid = new Map<string, EncryptionKey>();

  constructor(current: EncryptionKey, previous: readonly EncryptionKey[] = []) {
    this.current = current;
    for (const key of [current, ...previous]) if (!this.#byKid.has(key.kid)) this.#byKid.set(key.kid, key);
  }

  get kids(): string[] {
    return [...this.#byKid.keys()];
  }

  find(kid: string): EncryptionKey | undefined {
    return this.#byKid.get(kid);
  }

  toJSON(): { current: string; kids: string[] } {
    return { current: this.current.kid, kids: this.kids };
  }
}

/** The ring from the parsed environment, or undefined when KEY_ENCRYPTION_KEY is not set. */
export function keyRingFrom(config: { keyEncryptionKey: EncryptionKey | undefined; keyEncryptionKeysPrevious: EncryptionKey[] | undefined }): KeyRing | undefined {
  if (config.keyEncryptionKey === undefined) return undefined;
  return new KeyRing(config.keyEncryptionKey, config.keyEncryptionKeysPrevious ?? []);
}

export function encryptPrivateKey(pem: string, domain: string, ring: KeyRing): KeyEnvelope {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', ring.current.bytes(), iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(domain, 'utf8'));
  const ct = Buffer.concat([cipher.update(pem, 'utf8'), cipher.final()]);
  return { alg: 'A256GCM', kid: ring.current.kid, iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), ct: ct.toString('base64') };
}

function field(envelope: Record<string, unknown>, name: string, domain: string): string {
  const value = envelope[name];
  if (typeof value !== 'string' || !BASE64_RE.test(value)) throw new KeyEnvelopeError(`the key envelope of ${domain} has no valid ${name}`);
  return value;
}

/**
 * The PEM sealed in `envelope` for `domain`. `{alg: 'none'}` (records written before
 * encryption at rest) needs no ring. Throws KeyEnvelopeError naming the domain and kid only.
 */
export function decryptPrivateKey(envelope: KeyEnvelope, domain: string, ring: KeyRing | undefined): string {
  const raw = envelope as unknown as Record<string, unknown>;
  if (raw['alg'] === 'none') {
    if (typeof raw['pem'] !== 'string') throw new KeyEnvelopeError(`the key envelope of ${domain} has no pem`);
    return raw['pem'];
  }
  if (raw['alg'] !== 'A256GCM') throw new KeyEnvelopeError(`the key envelope of ${domain} has an unknown alg ${JSON.stringify(String(raw['alg']).slice(0, 20))}`);
  const kid = typeof raw['kid'] === 'string' ? raw['kid'].slice(0, 64) : '';
  if (ring === undefined) throw new KeyEnvelopeError(`the private key of ${domain} is encrypted (kid ${kid}) but KEY_ENCRYPTION_KEY is not set`);
  const key = ring.find(kid);
  if (key === undefined) {
    throw new KeyEnvelopeError(
      `the private key of ${domain} is encrypted with key ${kid}, which is neither KEY_ENCRYPTION_KEY (${ring.current.kid}) nor in KEY_ENCRYPTION_KEYS_PREVIOUS`,
    );
  }
  const iv = Buffer.from(field(raw, 'iv', domain), 'base64');
  const tag = Buffer.from(field(raw, 'tag', domain), 'base64');
  const ct = Buffer.from(field(raw, 'ct', domain), 'base64');
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw new KeyEnvelopeError(`the key envelope of ${domain} has a malformed iv or tag`);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key.bytes(), iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(domain, 'utf8'));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ct), decipher.final()]).toString('utf8');
  } catch {
    // OpenSSL says only "unable to authenticate data"; say what it means here.
    throw new KeyEnvelopeError(`the private key of ${domain} does not decrypt with key ${kid}: the record was altered or belongs to another domain`);
  }
}

/** Whether `envelope` should be re-sealed with the ring's current key (rotation, migration). */
export function isSealedWithCurrent(envelope: KeyEnvelope, ring: KeyRing): boolean {
  return envelope.alg === 'A256GCM' && envelope.kid === ring.current.kid;
}
