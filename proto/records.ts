/**
 * Record codecs: the JSON stored under the keys of keys.ts.
 *
 * Every record is a JSON object whose last field is `version`, the global version of the
 * write that produced it. The control plane encodes a record *open* (without `version` and
 * the closing brace) and its apply script seals it with the version it just allocated, so
 * the records and the invalidation message of one event carry the same number without a
 * second round trip. `"v": 1` is the schema version of the record itself: readers refuse
 * what they do not know rather than guess.
 */

export const RECORD_SCHEMA = 1;

export interface Container {
  id: string;
  host: string;
  port: number;
}

export type Balancer = 'p2c' | 'round_robin';

export interface AppSettings {
  force_https: boolean;
  sticky_sessions: boolean;
  /** Seconds; 0 means no Strict-Transport-Security header. */
  hsts_max_age: number;
  balancer: Balancer;
}

export const DEFAULT_SETTINGS: Readonly<AppSettings> = Object.freeze({
  force_https: false,
  sticky_sessions: false,
  hsts_max_age: 0,
  balancer: 'p2c',
});

/** `stopped`: hostnames kept, no containers (routers answer 503). */
export type HostStatus = 'running' | 'stopped';

/**
 * What a router needs to route one hostname, in one GET: every hostname of an app holds the
 * same record, rewritten in full by each event that changes the app.
 */
export interface HostRecord {
  v: 1;
  app: string;
  status: HostStatus;
  containers: Container[];
  settings: AppSettings;
  version: number;
}

/**
 * A private key as stored. `none` is plaintext PEM; encryption at rest adds another `alg`
 * (AES-256-GCM with a key id) without changing the rest of the record.
 */
export type KeyEnvelope =
  | { alg: 'none'; pem: string }
  | { alg: 'A256GCM'; kid: string; iv: string; tag: string; ct: string };

export interface CertRecord {
  v: 1;
  app: string;
  /** Exact name or `*.example.org`: the SNI resolver tries the exact name, then the wildcard. */
  domain: string;
  /** PEM, leaf first, in the order the platform sent it. */
  chain: string;
  key: KeyEnvelope;
  key_type: 'ec' | 'rsa';
  not_before: string;
  not_after: string;
  fingerprint256: string;
  version: number;
}

export interface CertSummary {
  domain: string;
  not_after: string;
  fingerprint256: string;
}

/** `deleted` is a tombstone: it keeps `seq` so a late, older event cannot resurrect the app. */
export type AppStatus = HostStatus | 'deleted';

export interface AppRecord {
  v: 1;
  app: string;
  seq: number;
  status: AppStatus;
  containers: Container[];
  domains: string[];
  settings: AppSettings;
  certificates: CertSummary[];
  created_at: string;
  updated_at: string;
  version: number;
}

export type Open<T> = Omit<T, 'version'>;

export class RecordError extends Error {
  override readonly name = 'RecordError';
}

/** JSON of `record` without its closing brace, ready for `sealRecord` or the apply script. */
export function encodeOpen<T extends { v: 1 }>(record: Open<T>): string {
  const json = JSON.stringify(record);
  return json.slice(0, -1);
}

/** What the apply script does in Lua, for writers and tests on the JS side. */
export function sealRecord(open: string, version: number): string {
  return `${open},"version":${version}}`;
}

/**
 * The prefix every record of `app` starts with (`app` is encoded right after `v`); the apply
 * script compares it to tell whether a hostname already belongs to another app without
 * decoding a record that may hold a thousand containers.
 */
export function ownerPrefix(app: string): string {
  return `{"v":${RECORD_SCHEMA},"app":${JSON.stringify(app)},`;
}

function parseObject(raw: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new RecordError(`${what} record is not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RecordError(`${what} record is not an object`);
  }
  const obj = value as Record<string, unknown>;
  if (obj['v'] !== RECORD_SCHEMA) throw new RecordError(`${what} record has unknown schema ${String(obj['v'])}`);
  if (typeof obj['version'] !== 'number') throw new RecordError(`${what} record has no version`);
  return obj;
}

export function decodeHostRecord(raw: string): HostRecord {
  const obj = parseObject(raw, 'host');
  if (typeof obj['app'] !== 'string' || !Array.isArray(obj['containers'])) {
    throw new RecordError('host record lacks app or containers');
  }
  if (obj['status'] !== 'running' && obj['status'] !== 'stopped') {
    throw new RecordError(`host record has unknown status ${String(obj['status'])}`);
  }
  return obj as unknown as HostRecord;
}

export function decodeAppRecord(raw: string): AppRecord {
  const obj = parseObject(raw, 'app');
  if (typeof obj['app'] !== 'string' || typeof obj['seq'] !== 'number') {
    throw new RecordError('app record lacks app or seq');
  }
  return obj as unknown as AppRecord;
}

export function decodeCertRecord(raw: string): CertRecord {
  const obj = parseObject(raw, 'certificate');
  if (typeof obj['domain'] !== 'string' || typeof obj['chain'] !== 'string' || typeof obj['key'] !== 'object') {
    throw new RecordError('certificate record lacks domain, chain or key');
  }
  return obj as unknown as CertRecord;
}
