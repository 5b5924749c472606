import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AckStatus,
  FrameDecoder,
  FrameType,
  batchSeq,
  decodeAck,
  decodeHello,
  decodeSections,
  encodeAck,
  encodeBatch,
  encodeHello,
  isPlausibleLine,
  LogProtocolError,
  MAX_SEQ,
} from '../log-batch.js';

function collect(maxBatchBytes?: number) {
  const frames: Array<{ type: number; body: Buffer }> = [];
  const oversized: Array<{ type: number; length: number; seq: number | null }> = [];
  const decoder = new FrameDecoder(
    (type, body) => frames.push({ type, body: Buffer.from(body) }),
    (type, length, seq) => oversized.push({ type, length, seq }),
    maxBatchBytes,
  );
  return { frames, oversized, decoder };
}

test('a batch survives encoding, byte-by-byte delivery and decoding', () => {
  const sections = [
    { app: 'shop', data: Buffer.from('{"a":1}\n{"a":2}\n') },
    { app: 'blog-2', data: Buffer.from('{"é":"ü"}\n') },
  ];
  const wire = Buffer.concat([encodeHello({ token: 't', router: 'r1' }), encodeBatch(MAX_SEQ, sections), encodeAck({ seq: 7, status: AckStatus.UNAVAILABLE, accepted: 3, rejected: 1, message: 'disk full' })]);
  const { frames, decoder } = collect();
  for (const byte of wire) decoder.push(Buffer.from([byte]));
  assert.deepEqual(frames.map((f) => f.type), [FrameType.HELLO, FrameType.BATCH, FrameType.ACK]);
  assert.deepEqual(decodeHello(frames[0]!.body), { token: 't', router: 'r1' });
  assert.equal(batchSeq(frames[1]!.body), MAX_SEQ);
  assert.deepEqual(decodeSections(frames[1]!.body).map((s) => [s.app, s.data.toString()]), sections.map((s) => [s.app, s.data.toString()]));
  assert.deepEqual(decodeAck(frames[2]!.body), { seq: 7, status: AckStatus.UNAVAILABLE, accepted: 3, rejected: 1, message: 'disk full' });
});

test('an oversized batch is reported with its seq and skipped; the next frame still decodes', () => {
  const big = encodeBatch(41, [{ app: 'a', data: Buffer.alloc(5000, 0x61) }]);
  const next = encodeBatch(42, [{ app: 'a', data: Buffer.from('{}\n') }]);
  const { frames, oversized, decoder } = collect(1000);
  const wire = Buffer.concat([big, next]);
  for (let i = 0; i < wire.length; i += 700) decoder.push(wire.subarray(i, i + 700));
  assert.deepEqual(oversized, [{ type: FrameType.BATCH, length: big.length - 5, seq: 41 }]);
  assert.equal(frames.length, 1);
  assert.equal(batchSeq(frames[0]!.body), 42);
});

test('malformed sections and hostile app names are refused as a whole', () => {
  const good = encodeBatch(1, [{ app: 'ok', data: Buffer.from('{}\n') }]).subarray(5);
  assert.throws(() => decodeSections(good.subarray(0, good.length - 2)), LogProtocolError);
  for (const app of ['../etc', 'UPPER', '.', 'a/b']) {
    const body = encodeBatch(1, [{ app, data: Buffer.from('{}\n') }]).subarray(5);
    assert.throws(() => decodeSections(body), LogProtocolError, app);
  }
  assert.throws(() => decodeHello(Buffer.from('{"token":1}')), LogProtocolError);
  assert.throws(() => decodeHello(Buffer.from('nope')), LogProtocolError);
});

test('line plausibility is structural', () => {
  const check = (s: string) => isPlausibleLine(Buffer.from(s), 0, Buffer.byteLength(s));
  assert.equal(check('{"a":1}'), true);
  assert.equal(check('{"a":"\u00e9"}'), true);
  assert.equal(check('not json'), false);
  assert.equal(check('{"a":1'), false);
  assert.equal(check('{"a":"\t"}'), false);
  assert.equal(check('{}'), true);
  assert.equal(check('{'), false);
});
