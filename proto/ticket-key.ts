/**
 * A TLS session ticket key as stored in Redis (`KeySchema.ticketKey`), shared by every
 * router of the fleet so a session issued by one resumes on any other:
 *
 *   {"v":1,"key":{"alg":"A256GCM","kid","iv","tag","ct"}}
 *
 * The 48 key bytes (what node:tls `setTicketKeys` takes: 16 name, 16 HMAC, 16 AES) are sealed
 * in the same envelope as certificate private keys (key-envelope.ts), under
 * KEY_ENCRYPTION_KEY, with `ticket-key:<periodMs>:<epoch>` as additional authenticated data:
 * a record copied under another window does not open, so an attacker with write access to
 * Redis cannot make routers keep an old key alive. Whoever holds the key can open every
 * ticket issued under it (a TLS 1.2 ticket carries the session's master secret), so it is
 * never stored in clear: a record with `alg: none` is refused, and errors name the epoch
 * and key id only.
 */
import { KeyEnvelopeError, decryptPrivateKey, encryptPrivateKey, type KeyRing } from './key-envelope.js';
import type { KeyEnvelope } from './records.js';

export const TICKET_KEY_BYTES = 48;

export class TicketKeyError extends Error {
  override readonly name = 'TicketKeyError';
}

export function ticketKeyAad(periodMs: number, epoch: number): string {
  return `ticket-key:${periodMs}:${epoch}`;
}

export function sealTicketKey(key: Buffer, periodMs: number, epoch: number, ring: KeyRing): string {
  if (key.length !== TICKET_KEY_BYTES) throw new TicketKeyError(`a ticket key must be ${TICKET_KEY_BYTES} bytes`);
  return JSON.stringify({ v: 1, key: encryptPrivateKey(key.toString('base64'), ticketKeyAad(periodMs, epoch), ring) });
}

export function openTicketKey(raw: string, periodMs: number, epoch: number, ring: KeyRing): Buffer {
  let record: unknown;
  try {
    record = JSON.parse(raw);
  } catch {
    throw new TicketKeyError(`the ticket key record of epoch ${epoch} is not JSON`);
  }
  const envelope = typeof record === 'object' && record !== null && (record as { v?: unknown }).v === 1 ? (record as { key?: unknown }).key : undefined;
  if (typeof envelope !== 'object' || envelope === null || (envelope as { alg?: unknown }).alg !== 'A256GCM') {
    throw new TicketKeyError(`the ticket key record of epoch ${epoch} is not a sealed v1 record`);
  }
  let text: string;
  try {
    text = decryptPrivateKey(envelope as KeyEnvelope, ticketKeyAad(periodMs, epoch), ring);
  } catch (err) {
    if (err instanceof KeyEnvelopeError) throw new TicketKeyError(`the ticket key of epoch ${epoch} cannot be opened: ${err.message}`);
    throw err;
  }
  const key = Buffer.from(text, 'base64');
  if (key.length !== TICKET_KEY_BYTES) throw new TicketKeyError(`the ticket key of epoch ${epoch} is not ${TICKET_KEY_BYTES} bytes`);
  return key;
}
