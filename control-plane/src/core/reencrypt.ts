/**
 * Key rotation: re-seals every stored private key with the ring's current key. Each record
 * is rewritten by compare-and-set, so a certificate event landing meanwhile is never
 * overwritten (its record is re-read and, sealed with the current key already, left alone).
 * Records keep their version and nothing is published: the key they hold is unchanged.
 */
import { decryptPrivateKey, encryptPrivateKey, isSealedWithCurrent, KeyEnvelopeError, type KeyRing } from '../../../proto/key-envelope.js';
import { decodeCertRecord, RecordError } from '../../../proto/records.js';

export interface CertRecords {
  domains(): AsyncIterable<string>;
  get(domain: string): Promise<string | null>;
  replaceIfUnchanged(domain: string, expected: string, next: string): Promise<boolean>;
}

export interface ReencryptReport {
  /** Sealed with the current key by this run. */
  reencrypted: number;
  /** Already sealed with the current key (or removed while the run went on). */
  unchanged: number;
  /** Left as they were; each with a reason that names no key material. */
  failed: Array<{ domain: string; reason: string }>;
}

const MAX_ATTEMPTS = 5;

/** The record re-sealed with the current key, or null when it already is. Throws KeyEnvelopeError or RecordError. */
export function reencryptCertRecord(raw: string, domain: string, ring: KeyRing): string | null {
  const record = decodeCertRecord(raw);
  // The key name is what a reader looks up: the AAD must be that, whatever the record says.
  if (record.domain !== domain) throw new RecordError(`the record under cert:${domain} is for ${record.domain}`);
  if (isSealedWithCurrent(record.key, ring)) return null;
  const pem = decryptPrivateKey(record.key, domain, ring);
  // Replacing the field in the parsed object keeps the field order, `version` last.
  const fields = JSON.parse(raw) as Record<string, unknown>;
  fields['key'] = encryptPrivateKey(pem, domain, ring);
  return JSON.stringify(fields);
}

export async function reencryptAll(records: CertRecords, ring: KeyRing): Promise<ReencryptReport> {
  const report: ReencryptReport = { reencrypted: 0, unchanged: 0, failed: [] };
  const seen = new Set<string>();
  for await (const domain of records.domains()) {
    if (seen.has(domain)) continue;
    seen.add(domain);
    try {
      report[await reencryptOne(records, domain, ring)]++;
    } catch (err) {
      // Redis failures stop the run; a record that cannot be re-sealed is reported and skipped.
      if (!(err instanceof KeyEnvelopeError || err instanceof RecordError)) throw err;
      report.failed.push({ domain, reason: err.message });
    }
  }
  return report;
}

async function reencryptOne(records: CertRecords, domain: string, ring: KeyRing): Promise<'reencrypted' | 'unchanged'> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const raw = await records.get(domain);
    if (raw === null) return 'unchanged';
    const next = reencryptCertRecord(raw, domain, ring);
    if (next === null) return 'unchanged';
    if (await records.replaceIfUnchanged(domain, raw, next)) return 'reencrypted';
  }
  throw new RecordError(`the record changed ${MAX_ATTEMPTS} times while being re-encrypted; run the command again`);
}
