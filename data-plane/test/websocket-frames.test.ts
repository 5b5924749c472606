import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameCursor } from '../src/proxy/websocket-frames.js';

const HEAD = Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n', 'latin1');

/** A server-to-client frame (unmasked unless asked) with the length encoding its size needs. */
function frame(payload: number, opcode = 0x2, masked = false): Buffer {
  const ext = payload < 126 ? 0 : payload < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + ext + (masked ? 4 : 0));
  head[0] = 0x80 | opcode;
  head[1] = (masked ? 0x80 : 0) | (ext === 0 ? payload : ext === 2 ? 126 : 127);
  if (ext === 2) head.writeUInt16BE(payload, 2);
  if (ext === 8) head.writeBigUInt64BE(BigInt(payload), 2);
  return Buffer.concat([head, Buffer.alloc(payload, 0x61)]);
}

function rng(seed: number): () => number {
  let x = seed;
  return () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

test('boundaries are found wherever the stream is split', () => {
  const random = rng(7);
  for (let round = 0; round < 200; round++) {
    const sizes = Array.from({ length: 1 + Math.floor(random() * 6) }, () => [0, 1, 125, 126, 127, 65535, 65536, 70000][Math.floor(random() * 8)]!);
    const frames = sizes.map((n, i) => frame(n, i % 3 === 2 ? 0x9 : 0x2, random() < 0.2));
    const stream = Buffer.concat([HEAD, ...frames]);
    const boundaries = new Set<number>();
    let at = HEAD.length;
    for (const f of frames) {
      boundaries.add(at);
      at += f.length;
    }
    boundaries.add(at);
    // Observe up to a random cut, then ask for the next boundary in the rest.
    const cut = Math.floor(random() * stream.length);
    const cursor = new FrameCursor();
    let pos = 0;
    while (pos < cut) {
      const len = Math.min(cut - pos, 1 + Math.floor(random() * 3000));
      cursor.observe(stream.subarray(pos, pos + len));
      pos += len;
    }
    assert.equal(cursor.atBoundary(), boundaries.has(cut), `round ${round}: at ${cut}`);
    const expected = [...boundaries].filter((b) => b >= cut).sort((a, b) => a - b)[0]!;
    let found = -1;
    while (pos < stream.length || found === -1) {
      const len = Math.min(stream.length - pos, 1 + Math.floor(random() * 3000));
      const off = cursor.untilBoundary(stream.subarray(pos, pos + len));
      if (off !== -1) {
        found = pos + off;
        break;
      }
      pos += len;
    }
    assert.equal(found, expected, `round ${round}`);
  }
});

test('a stream that is not a 101 has no boundaries', () => {
  const cursor = new FrameCursor();
  cursor.observe(Buffer.from('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n'));
  assert.equal(cursor.followable(), false);
  assert.equal(cursor.atBoundary(), false);
  assert.equal(cursor.untilBoundary(Buffer.from([0x81, 0x00])), -1);
});
