/**
 * One access-log line as NDJSON, written by hand for AccessLogLine's fixed shape: numbers
 * are appended as they are and most strings need no escaping, so a line costs a few string
 * concatenations instead of JSON.stringify's walk over a generic object.
 *
 * The output is pure ASCII: everything outside printable ASCII is escaped as \uXXXX (JSON
 * allows it, and JSON.parse gives back the same string, lone surrogates included). So a
 * line's length in characters is its length in bytes: the batcher counts bytes without
 * Buffer.byteLength, and a batch section is encoded as latin1, a plain copy.
 */
import { MAX_LINE_BYTES } from '../../../proto/log-batch.js';
import type { AccessLogLine } from '../proxy/access-log.js';

/**
 * Caps on a field's encoded length, so a line always fits the shipper's MAX_LINE_BYTES even
 * when every character needs a 6-byte escape. The path keeps everything Node accepts in a
 * request line (16 KiB of headers in all); the others are short in any real request.
 */
export const PATH_MAX_ENCODED = 16 * 1024;
export const HOST_MAX_ENCODED = 2 * 1024;
export const FIELD_MAX_ENCODED = 512;

// Seven short fields with their quotes, path and host, six numbers, the keys and punctuation.
const WORST_LINE = PATH_MAX_ENCODED + HOST_MAX_ENCODED + 7 * (FIELD_MAX_ENCODED + 2) + 6 * 24 + 200;
if (WORST_LINE > MAX_LINE_BYTES) throw new Error('access-log field caps exceed MAX_LINE_BYTES');

/** Printable ASCII except '"' and '\': a string made only of these is its own JSON body. */
const NEEDS_ESCAPE = /[^ !#-[\]-~]/;
const HEX = '0123456789abcdef';

/** The JSON string literal for `s`, ASCII only, its body cut at `max` characters (never inside an escape). */
export function jsonString(s: string, max: number): string {
  if (!NEEDS_ESCAPE.test(s)) return s.length <= max ? `"${s}"` : `"${s.slice(0, max)}"`;
  return `"${escapeSlow(s, max)}"`;
}

function escapeSlow(s: string, max: number): string {
  let out = '';
  // Start of the run of characters that need no escape, copied with one slice.
  let run = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c) continue;
    if (i > run) {
      if (out.length + (i - run) > max) return out + s.slice(run, run + max - out.length);
      out += s.slice(run, i);
    }
    run = i + 1;
    const piece = escapeChar(c);
    if (out.length + piece.length > max) return out;
    out += piece;
  }
  if (s.length > run) {
    if (out.length + (s.length - run) > max) return out + s.slice(run, run + max - out.length);
    out += s.slice(run);
  }
  return out;
}

function escapeChar(c: number): string {
  switch (c) {
    case 0x22:
      return '\\"';
    case 0x5c:
      return '\\\\';
    case 0x0a:
      return '\\n';
    case 0x0d:
      return '\\r';
    case 0x09:
      return '\\t';
    default:
      return `\\u${HEX[(c >> 12) & 15]}${HEX[(c >> 8) & 15]}${HEX[(c >> 4) & 15]}${HEX[c & 15]}`;
  }
}

/** NaN and the infinities are not JSON: written as null, as JSON.stringify would. */
function num(n: number): string {
  return Number.isFinite(n) ? `${n}` : 'null';
}

/** The NDJSON line of `l`, ending in '\n', ASCII only. Keys in AccessLogLine's order. */
export function encodeAccessLine(l: AccessLogLine): string {
  return (
    `{"at":${num(l.at)},"code":${jsonString(l.code, FIELD_MAX_ENCODED)},"app":${jsonString(l.app, FIELD_MAX_ENCODED)}` +
    `,"method":${jsonString(l.method, FIELD_MAX_ENCODED)},"host":${jsonString(l.host, HOST_MAX_ENCODED)},"path":${jsonString(l.path, PATH_MAX_ENCODED)}` +
    `,"status":${num(l.status)},"bytes_in":${num(l.bytes_in)},"bytes_out":${num(l.bytes_out)}` +
    `,"connect_ms":${num(l.connect_ms)},"service_ms":${num(l.service_ms)},"request_id":${jsonString(l.request_id, FIELD_MAX_ENCODED)}` +
    `,"container":${jsonString(l.container, FIELD_MAX_ENCODED)},"client_ip":${jsonString(l.client_ip, FIELD_MAX_ENCODED)}` +
    `,"protocol":${jsonString(l.protocol, FIELD_MAX_ENCODED)}}\n`
  );
}
