/**
 * The SNI callback's only read: one MGET `cert:<name> cert:<*.rest>` per cold name (the exact
 * name wins, then the one-label wildcard, as for routes), the private key opened with the
 * key ring, and the SecureContext built once here so handshakes only ever reuse it.
 *
 * Errors name the domain and the reason only: neither the record nor the key is ever put in
 * a message (proto/key-envelope.ts keeps its own errors clean the same way).
 */
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Redis } from 'ioredis';
import type { KeyRing } from '../../../proto/key-envelope.js';
import { decryptPrivateKey } from '../../../proto/key-envelope.js';
import type { KeySchema } from '../../../proto/keys.js';
import { wildcardFor } from '../../../proto/names.js';
import { decodeCertRecord } from '../../../proto/records.js';

export interface LoadedCert {
  /** The stored domain that answered: the SNI name itself or its wildcard `*.rest`. */
  domain: string;
  context: SecureContext;
  notAfterMs: number;
  fingerprint256: string;
}

/** A record that exists but cannot be served (corrupt, key sealed with an unknown key, PEM refused). */
export class UnusableCertError extends Error {
  override readonly name = 'UnusableCertError';
}

/** What the cache reads through; tests wrap it to count or delay lookups. */
export interface CertSource {
  find(name: string): Promise<LoadedCert | null>;
}

export class CertStore implements CertSource {
  constructor(
    private readonly redis: Redis,
    private readonly keys: KeySchema,
    private readonly ring: KeyRing | undefined,
  ) {}

  async find(name: string): Promise<LoadedCert | null> {
    const wildcard = wildcardFor(name);
    if (wildcard === null) {
      const raw = await this.redis.get(this.keys.cert(name));
      return raw === null ? null : this.load(name, raw);
    }
    const [exact, wild] = await this.redis.mget(this.keys.cert(name), this.keys.cert(wildcard));
    if (exact !== null && exact !== undefined) return this.load(name, exact);
    if (wild !== null && wild !== undefined) return this.load(wildcard, wild);
    return null;
  }

  private load(domain: string, raw: string): LoadedCert {
    let pem: string;
    let chain: string;
    let notAfter: string;
    let fingerprint: string;
    try {
      const record = decodeCertRecord(raw);
      // The key is sealed with the stored domain as AAD: a record copied elsewhere fails here.
      pem = decryptPrivateKey(record.key, domain, this.ring);
      chain = record.chain;
      notAfter = record.not_after;
      fingerprint = record.fingerprint256;
    } catch (err) {
      throw new UnusableCertError(`certificate of ${domain}: ${(err as Error).message}`);
    }
    try {
      return { domain, context: createSecureContext({ cert: chain, key: pem }), notAfterMs: Date.parse(notAfter), fingerprint256: fingerprint };
    } catch {
      // OpenSSL's message may quote PEM fragments: say only what failed.
      throw new UnusableCertError(`certificate of ${domain}: the chain or key was refused by OpenSSL`);
    }
  }
}
