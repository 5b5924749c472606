import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_LINE_BYTES, isPlausibleLine } from '../../proto/log-batch.js';
import { encodeAccessLine, jsonString, PATH_MAX_ENCODED } from '../src/access-logs/line-encoder.js';
import { accessLine, type AccessLogLine } from '../src/proxy/access-log.js';

function line(over: Partial<AccessLogLine> = {}): AccessLogLine {
  return { ...accessLine(1_760_000_000_123, '-', 'my-app', 'GET', 'my-app.localhost', '/a?b=c', 200, 12, 3456, 1, 17, 'req-0123456789abcdefghij', 'c1', '10.0.0.1', 'http/1.1'), ...over };
}

/** The line parses as one JSON object, equal to what JSON.stringify gives for the same object, and is plain printable ASCII. */
function assertFaithful(l: AccessLogLine): void {
  const text = encodeAccessLine(l);
  assert.ok(text.endsWith('\n'));
  const body = text.slice(0, -1);
  assert.ok(!body.includes('\n'), 'one line');
  assert.match(body, /^[\x20-\x7e]*$/, 'printable ASCII only');
  assert.deepEqual(JSON.parse(body), JSON.parse(JSON.stringify(l)));
  const buf = Buffer.from(text, 'latin1');
  assert.ok(isPlausibleLine(buf, 0, buf.length - 1), 'passes the shipper\'s line check');
}

test('a line is the object as JSON, keys in AccessLogLine order', () => {
  const l = line();
  assert.equal(encodeAccessLine(l), JSON.stringify(l) + '\n');
});

test('hostile strings: quotes, backslashes, control characters, non-ASCII, lone surrogates', () => {
  const hostile = [
    '"',
    '\\',
    '\\"',
    '"}\n{"app":"evil"',
    '\u0000\u0001\u001f\u007f',
    '\r\n\t\b\f',
    'caf\u00e9 \u4e2d\u6587 \u{1f600}',
    '\ud800',
    '\udfff',
    'a\ud800b\udc00c',
    '\udc00\ud800',
    '\u2028\u2029',
    '</script><script>',
    '',
  ];
  for (const s of hostile) {
    assertFaithful(line({ path: s }));
    assertFaithful(line({ host: s, method: s, client_ip: s, container: s, request_id: s, code: s, app: s }));
  }
});

test('random strings over the whole UTF-16 range round-trip through JSON.parse', () => {
  let seed = 42;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let i = 0; i < 3000; i++) {
    const len = rand(40);
    let s = '';
    for (let j = 0; j < len; j++) {
      // Mostly the interesting ranges: controls, ASCII, quotes, Latin-1, surrogates.
      const pick = rand(6);
      const code = pick === 0 ? rand(0x20) : pick === 1 ? 0x20 + rand(0x60) : pick === 2 ? [0x22, 0x5c, 0x7f][rand(3)]! : pick === 3 ? 0x80 + rand(0x80) : pick === 4 ? 0xd800 + rand(0x800) : rand(0x10000);
      s += String.fromCharCode(code);
    }
    assertFaithful(line({ path: s, host: s.slice(0, 10), request_id: s.slice(5) }));
  }
});

test('numbers: integers and fractions as they are, NaN and infinities as null', () => {
  const l = line({ connect_ms: 1.5, service_ms: NaN, bytes_in: Infinity, bytes_out: -Infinity, status: 0 });
  const parsed = JSON.parse(encodeAccessLine(l)) as Record<string, unknown>;
  assert.equal(parsed['connect_ms'], 1.5);
  assert.equal(parsed['service_ms'], null);
  assert.equal(parsed['bytes_in'], null);
  assert.equal(parsed['bytes_out'], null);
  assert.equal(parsed['status'], 0);
});

test('huge fields are cut so the line stays under MAX_LINE_BYTES, never inside an escape', () => {
  const evil = '\u0001'.repeat(100_000);
  const text = encodeAccessLine(line({ path: evil, host: evil, method: evil, request_id: evil, container: evil, client_ip: evil, code: evil, app: evil }));
  assert.ok(text.length <= MAX_LINE_BYTES, `${text.length} bytes`);
  const parsed = JSON.parse(text) as Record<string, string>;
  assert.ok(evil.startsWith(parsed['path']!));
  assert.equal(parsed['path']!.length, Math.floor(PATH_MAX_ENCODED / 6));

  const longAscii = '/x'.repeat(20_000);
  const cut = JSON.parse(encodeAccessLine(line({ path: longAscii }))) as Record<string, string>;
  assert.equal(cut['path'], longAscii.slice(0, PATH_MAX_ENCODED));

  // A cut in the middle of a run of plain characters after an escape.
  assert.equal(JSON.parse(jsonString('"' + 'a'.repeat(20), 10)), '"' + 'a'.repeat(8));
  // An escape that does not fit whole is left out.
  assert.equal(JSON.parse(jsonString('abcdefgh\u0001', 10)), 'abcdefgh');
});
