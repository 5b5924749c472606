/**
 * The log batch protocol between routers and the log-shipper (see docs/ARCHITECTURE.md).
 *
 * Framed messages over one TCP connection per router worker, not gRPC: a batch is 64 KB of
 * already-serialized NDJSON that only needs splitting by app, so the framing is a length, a
 * type and a few fixed fields; the shipper hands each app's bytes to write(2) as they came,
 * without decoding a protobuf or going through grpc-js's HTTP/2 flow control (whose 64 KB
 * default window costs a round trip per batch). Acks are pipelined: the client keeps a
 * window of unacked batches in flight and the shipper answers them in order.
 *
 * Connection: the client sends LOG_PROTOCOL_MAGIC once (so the shipper can serve HTTP —
 * tail, /metrics — on the same port and tell the two apart from the first bytes), then a
 * HELLO frame; the shipper answers READY, or ERROR and closes. Then BATCH frames, each
 * answered by one ACK with the same sequence number, in order.
 *
 * Frame: u32 BE length of what follows (type + body), u8 type, body.
 *   HELLO  body: UTF-8 JSON {"token": string, "router": string} — router: an id unique per
 *          router worker process (host:pid:start), the scope of batch sequence numbers.
 *   READY  body: empty.
 *   BATCH  body: u48 BE seq, then sections until the end: u8 app length, app (ASCII), u32 BE
 *          data length, data = NDJSON lines of that app, each ending in '\n'. The app is a
 *          valid app name, or UNROUTED_SECTION for lines of requests that never resolved
 *          to an app (unknown hosts, malformed requests).
 *   ACK    body: u48 BE seq, u8 status, u32 BE lines accepted, u32 BE lines rejected, UTF-8
 *          message (empty when OK).
 *   ERROR  body: UTF-8 message; the shipper closes the connection after it.
 *
 * Seq numbers grow by one per batch for a given router id, across reconnections: a batch
 * resent after a lost ack carries its old seq, so a shipper that saw it already can ack it
 * without writing it twice.
 */
import { isValidAppName } from './names.js';

/** Sent once by the client before its first frame. */
export const LOG_PROTOCOL_MAGIC = Buffer.from('RLOG/1\n', 'latin1');

/** The section name of lines with no app ('-' in the line's app field). Never a valid app name. */
export const UNROUTED_SECTION = '-';

/** A BATCH body over this many bytes is refused (status TOO_LARGE) and skipped. */
export const MAX_BATCH_BYTES = 1024 * 1024;
/** Frames other than BATCH are small; a larger one means a confused peer. */
export const MAX_CONTROL_FRAME_BYTES = 16 * 1024;
/** A line longer than this is rejected (the router never builds one). */
export const MAX_LINE_BYTES = 64 * 1024;

export const FrameType = {
  HELLO: 1,
  READY: 2,
  BATCH: 3,
  ACK: 4,
  ERROR: 5,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const AckStatus = {
  /** Written where the shipper's contract says (lines rejected, if any, are counted). */
  OK: 0,
  /** The batch's sections do not parse: nothing written; resending it would not help. */
  MALFORMED: 1,
  /** Over MAX_BATCH_BYTES: nothing written; resending it would not help. */
  TOO_LARGE: 2,
  /** A backend failed: nothing acknowledged; send it again later. */
  UNAVAILABLE: 3,
} as const;
export type AckStatus = (typeof AckStatus)[keyof typeof AckStatus];

const FRAME_HEADER = 5;
const SEQ_BYTES = 6;
/** Seq numbers are u48: 2^48 batches outlive any router process. */
export const MAX_SEQ = 2 ** 48 - 1;

export class LogProtocolError extends Error {
  override readonly name = 'LogProtocolError';
}

export interface Hello {
  token: string;
  router: string;
}

export interface Ack {
  seq: number;
  status: AckStatus;
  accepted: number;
  rejected: number;
  message: string;
}

/** One app's lines in a batch: `data` is a view into the batch, valid until the next frame. */
export interface Section {
  app: string;
  data: Buffer;
}

function frame(type: FrameType, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER + body.length);
  out.writeUInt32BE(1 + body.length, 0);
  out[4] = type;
  body.copy(out, FRAME_HEADER);
  return out;
}

export function encodeHello(hello: Hello): Buffer {
  return frame(FrameType.HELLO, Buffer.from(JSON.stringify({ token: hello.token, router: hello.router }), 'utf8'));
}

export function encodeReady(): Buffer {
  return frame(FrameType.READY, Buffer.alloc(0));
}

export function encodeError(message: string): Buffer {
  return frame(FrameType.ERROR, Buffer.from(message, 'utf8'));
}

export function encodeAck(ack: Ack): Buffer {
  const message = Buffer.from(ack.message, 'utf8');
  const body = Buffer.allocUnsafe(SEQ_BYTES + 1 + 4 + 4 + message.length);
  body.writeUIntBE(ack.seq, 0, SEQ_BYTES);
  body[SEQ_BYTES] = ack.status;
  body.writeUInt32BE(ack.accepted, SEQ_BYTES + 1);
  body.writeUInt32BE(ack.rejected, SEQ_BYTES + 5);
  message.copy(body, SEQ_BYTES + 9);
  return frame(FrameType.ACK, body);
}

/**
 * A BATCH frame from per-app NDJSON chunks. `sections` maps an app name (already valid, see
 * isValidAppName) to its lines, each ending in '\n'. Written in one allocation, one copy.
 */
export function encodeBatch(seq: number, sections: ReadonlyArray<{ app: string; data: Buffer }>): Buffer {
  if (!Number.isSafeInteger(seq) || seq < 0 || seq > MAX_SEQ) throw new LogProtocolError(`seq out of range: ${seq}`);
  let size = FRAME_HEADER + SEQ_BYTES;
  for (const s of sections) size += 1 + s.app.length + 4 + s.data.length;
  const out = Buffer.allocUnsafe(size);
  out.writeUInt32BE(size - 4, 0);
  out[4] = FrameType.BATCH;
  out.writeUIntBE(seq, FRAME_HEADER, SEQ_BYTES);
  let at = FRAME_HEADER + SEQ_BYTES;
  for (const s of sections) {
    out[at] = s.app.length;
    at += 1;
    at += out.write(s.app, at, 'latin1');
    out.writeUInt32BE(s.data.length, at);
    at += 4;
    at += s.data.copy(out, at);
  }
  return out;
}

/** Size on the wire of a BATCH frame holding `dataBytes` of lines over `apps` sections. */
export function batchFrameBytes(apps: number, appNameBytes: number, dataBytes: number): number {
  return FRAME_HEADER + SEQ_BYTES + apps * 5 + appNameBytes + dataBytes;
}

export function decodeHello(body: Buffer): Hello {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw new LogProtocolError('HELLO is not JSON');
  }
  const v = value as Partial<Hello> | null;
  if (v === null || typeof v !== 'object' || typeof v.token !== 'string' || typeof v.router !== 'string' || v.router.length === 0 || v.router.length > 200) {
    throw new LogProtocolError('HELLO must be {"token": string, "router": string of 1-200 characters}');
  }
  return { token: v.token, router: v.router };
}

export function decodeAck(body: Buffer): Ack {
  if (body.length < SEQ_BYTES + 9) throw new LogProtocolError('ACK too short');
  const status = body[SEQ_BYTES]!;
  if (status > AckStatus.UNAVAILABLE) throw new LogProtocolError(`unknown ACK status ${status}`);
  return {
    seq: body.readUIntBE(0, SEQ_BYTES),
    status: status as AckStatus,
    accepted: body.readUInt32BE(SEQ_BYTES + 1),
    rejected: body.readUInt32BE(SEQ_BYTES + 5),
    message: body.toString('utf8', SEQ_BYTES + 9),
  };
}

export function batchSeq(body: Buffer): number {
  if (body.length < SEQ_BYTES) throw new LogProtocolError('BATCH shorter than its seq');
  return body.readUIntBE(0, SEQ_BYTES);
}

/**
 * The sections of a BATCH body (after its seq). Throws LogProtocolError when a length runs
 * past the end or an app name is invalid: the whole batch is then MALFORMED, since nothing
 * after a bad length can be trusted. Lines are checked one by one by `isPlausibleLine`.
 */
export function decodeSections(body: Buffer): Section[] {
  const sections: Section[] = [];
  let at = SEQ_BYTES;
  while (at < body.length) {
    const appLen = body[at]!;
    at += 1;
    if (appLen === 0 || at + appLen + 4 > body.length) throw new LogProtocolError('section header runs past the end of the batch');
    const app = body.toString('latin1', at, at + appLen);
    at += appLen;
    if (app !== UNROUTED_SECTION && !isValidAppName(app)) throw new LogProtocolError(`invalid app name in batch: ${JSON.stringify(app.slice(0, 64))}`);
    const dataLen = body.readUInt32BE(at);
    at += 4;
    if (at + dataLen > body.length) throw new LogProtocolError(`section of ${app} runs past the end of the batch`);
    sections.push({ app, data: body.subarray(at, at + dataLen) });
    at += dataLen;
  }
  return sections;
}

/**
 * Whether bytes [start, end) (without the '\n') look like one JSON object line: starts
 * with '{', ends with '}', no control bytes, at most MAX_LINE_BYTES. A structural check,
 * not a parse: at 2000 batches/s a JSON.parse per line would cost the shipper a core.
 */
export function isPlausibleLine(buf: Buffer, start: number, end: number): boolean {
  const len = end - start;
  if (len < 2 || len > MAX_LINE_BYTES || buf[start] !== 0x7b || buf[end - 1] !== 0x7d) return false;
  for (let i = start; i < end; i++) if (buf[i]! < 0x20) return false;
  return true;
}

/**
 * Splits a streaming connection into frames. Bodies over the limit for their type are not
 * buffered: the decoder reports them (`oversized`) with their seq when it is a BATCH, and
 * skips their bytes, so the connection stays usable.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Bytes of an oversized frame still to discard. */
  private skipping = 0;

  constructor(
    private readonly onFrame: (type: FrameType, body: Buffer) => void,
    private readonly onOversized: (type: number, length: number, seq: number | null) => void,
    private readonly maxBatchBytes = MAX_BATCH_BYTES,
  ) {}

  push(chunk: Buffer): void {
    if (this.skipping > 0) {
      const n = Math.min(this.skipping, chunk.length);
      this.skipping -= n;
      if (n === chunk.length) return;
      chunk = chunk.subarray(n);
    }
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    this.drain();
  }

  private drain(): void {
    while (this.buffered >= FRAME_HEADER) {
      const head = this.peek(FRAME_HEADER + SEQ_BYTES);
      const length = head.readUInt32BE(0);
      const type = head[4]!;
      if (length < 1) throw new LogProtocolError('frame of length 0');
      const limit = type === FrameType.BATCH ? this.maxBatchBytes + SEQ_BYTES : MAX_CONTROL_FRAME_BYTES;
      if (length - 1 > limit) {
        // Needs the seq to answer the sender, when it is a batch: wait for it.
        if (type === FrameType.BATCH && this.buffered < FRAME_HEADER + SEQ_BYTES) return;
        const seq = type === FrameType.BATCH ? head.readUIntBE(FRAME_HEADER, SEQ_BYTES) : null;
        const total = 4 + length;
        const have = Math.min(this.buffered, total);
        this.consume(have);
        this.skipping = total - have;
        this.onOversized(type, length - 1, seq);
        if (this.skipping > 0) return;
        continue;
      }
      if (this.buffered < 4 + length) return;
      const whole = this.take(4 + length);
      this.onFrame(type as FrameType, whole.subarray(FRAME_HEADER));
    }
  }

  /** The first `n` buffered bytes (fewer when not that many are buffered), without consuming. */
  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n || this.chunks.length === 1) return first;
    return Buffer.concat(this.chunks, Math.min(n, this.buffered));
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      const all = Buffer.concat(this.chunks, this.buffered);
      out = all.subarray(0, n);
      this.chunks = all.length > n ? [all.subarray(n)] : [];
    }
    this.buffered -= n;
    return out;
  }

  private consume(n: number): void {
    void this.take(n);
  }
}
