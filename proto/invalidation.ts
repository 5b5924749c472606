/**
 * The invalidation protocol on `<prefix>invalidations` (see docs/ARCHITECTURE.md).
 *
 * Each write of the control plane bumps `<prefix>version` by exactly one and publishes exactly
 * one message carrying that version, in the same atomic script. A subscriber therefore sees
 * versions 1, 2, 3, ... with no hole: when `version` is not `last + 1` a message was missed
 * (pub/sub is at-most-once) and the subscriber must flush everything it cached. It must also
 * flush on every (re)subscription, since writes made while it was away were never delivered.
 */
import { RECORD_SCHEMA, RecordError } from './records.js';

export interface Invalidation {
  v: 1;
  /** The app the event was about (for logs and metrics; caches key on names, not apps). */
  app: string;
  /** Hostnames whose `host:` records changed or disappeared: drop exactly these. */
  hosts: string[];
  /** Certificate domains whose `cert:` records changed or disappeared. */
  certs: string[];
  version: number;
}

export type OpenInvalidation = Omit<Invalidation, 'version'>;

/** Encoded open, like the records: the apply script appends the version it allocated. */
export function encodeInvalidationOpen(message: OpenInvalidation): string {
  return JSON.stringify(message).slice(0, -1);
}

export function decodeInvalidation(raw: string): Invalidation {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new RecordError('invalidation is not JSON');
  }
  const msg = value as Partial<Invalidation> | null;
  if (
    msg === null ||
    typeof msg !== 'object' ||
    msg.v !== RECORD_SCHEMA ||
    typeof msg.version !== 'number' ||
    !Array.isArray(msg.hosts) ||
    !Array.isArray(msg.certs)
  ) {
    throw new RecordError('invalidation has an unknown shape');
  }
  return msg as Invalidation;
}

/**
 * What a subscriber must do with a message given the last version it applied: apply it,
 * ignore it (already seen, e.g. a duplicate after a resubscribe), or flush (a gap).
 */
export function classifyVersion(lastApplied: number, incoming: number): 'apply' | 'ignore' | 'flush' {
  if (incoming === lastApplied + 1) return 'apply';
  if (incoming <= lastApplied) return 'ignore';
  return 'flush';
}
