import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { EncryptionKey, KeyRing } from '../key-envelope.js';
import { TicketKeyError, openTicketKey, sealTicketKey } from '../ticket-key.js';

const PERIOD = 43_200_000;
const current = EncryptionKey.generate();
const previous = EncryptionKey.generate();
const ring = new KeyRing(current, [previous]);

test('a ticket key round-trips sealed, with a fresh IV each time, and no key byte in the record', () => {
  const key = randomBytes(48);
  const a = sealTicketKey(key, PERIOD, 41_000, ring);
  const b = sealTicketKey(key, PERIOD, 41_000, ring);
  assert.notEqual(a, b);
  const record = JSON.parse(a) as { v: number; key: { alg: string; kid: string } };
  assert.equal(record.v, 1);
  assert.equal(record.key.alg, 'A256GCM');
  assert.equal(record.key.kid, current.kid);
  for (const enc of ['hex', 'base64', 'base64url'] as const) assert.ok(!a.includes(key.toString(enc)));
  assert.ok(openTicketKey(a, PERIOD, 41_000, ring).equals(key));
  // Still opens after the key-encryption key rotated (the old one kept as previous).
  const sealedByOld = sealTicketKey(key, PERIOD, 41_000, new KeyRing(previous));
  assert.ok(openTicketKey(sealedByOld, PERIOD, 41_000, ring).equals(key));
});

test('a record is bound to its window and period', () => {
  const sealed = sealTicketKey(randomBytes(48), PERIOD, 41_000, ring);
  assert.throws(() => openTicketKey(sealed, PERIOD, 41_001, ring), (err: unknown) => err instanceof TicketKeyError && /epoch 41001 cannot be opened/.test(err.message));
  assert.throws(() => openTicketKey(sealed, 3_600_000, 41_000, ring), TicketKeyError);
});

test('records that are not sealed v1 ticket keys are refused with a clear error', () => {
  const key = randomBytes(48);
  const cases: Array<[string, RegExp]> = [
    ['not json', /not JSON/],
    [JSON.stringify({ v: 1, key: { alg: 'none', pem: key.toString('base64') } }), /not a sealed v1 record/],
    [JSON.stringify({ v: 2, key: JSON.parse(sealTicketKey(key, PERIOD, 1, ring)).key }), /not a sealed v1 record/],
    [sealTicketKey(key, PERIOD, 1, new KeyRing(EncryptionKey.generate())), /cannot be opened: .*neither KEY_ENCRYPTION_KEY/],
  ];
  for (const [raw, message] of cases) {
    assert.throws(() => openTicketKey(raw, PERIOD, 1, ring), (err: unknown) => {
      assert.ok(err instanceof TicketKeyError, String(err));
      assert.match(err.message, message);
      assert.ok(!err.message.includes(key.toString('base64')));
      return true;
    });
  }
  assert.throws(() => sealTicketKey(randomBytes(32), PERIOD, 1, ring), TicketKeyError);
});
