/**
 * Where the frames of a WebSocket's container-to-client stream begin.
 *
 * Tunnels pipe raw bytes and never decode frames. But when a draining router must give up
 * a session it should say so the way RFC 6455 does — a close frame with 1001 "going away",
 * which clients treat as a clean close and reconnect after — rather than reset the socket
 * (1006 to the client). A close frame can only be written between two frames (control
 * frames may even sit between the fragments of a message), so the tunnel keeps this
 * cursor up to date: per chunk it skips frame payloads by their length and reads only the
 * 2–14 header bytes, which costs next to nothing beside the copy the pipe already makes.
 */

const enum Phase {
  /** Reading the container's HTTP response head. */
  Head,
  /** Between frames, or inside a frame header. */
  Header,
  Payload,
  /** Not a WebSocket stream (not a 101), or one we could not follow: no boundaries known. */
  Lost,
}

const CRLFCRLF = [13, 10, 13, 10];

/** Close frame, server to client (unmasked): code 1001, reason "router restarting". */
export const GOING_AWAY_FRAME = (() => {
  const reason = Buffer.from('router restarting', 'latin1');
  const frame = Buffer.alloc(4 + reason.length);
  frame[0] = 0x88;
  frame[1] = 2 + reason.length;
  frame.writeUInt16BE(1001, 2);
  reason.copy(frame, 4);
  return frame;
})();

export class FrameCursor {
  private phase = Phase.Head;
  private matched = 0;
  private headBytes = 0;
  private readonly header = Buffer.alloc(14);
  private headerHave = 0;
  private remaining = 0;

  /** True when the next byte from the container starts a new frame. */
  atBoundary(): boolean {
    return this.phase === Phase.Header && this.headerHave === 0;
  }

  /** False once the stream is known not to be (or no longer followable as) WebSocket frames. */
  followable(): boolean {
    return this.phase !== Phase.Lost;
  }

  /** Advances over a whole chunk the client was sent. */
  observe(chunk: Buffer): void {
    this.advance(chunk, false);
  }

  /**
   * Advances up to the first frame boundary in `chunk` and returns its offset (0 when the
   * cursor is already at one), or -1 when the chunk ends inside a frame (all of it consumed).
   */
  untilBoundary(chunk: Buffer): number {
    return this.advance(chunk, true);
  }

  private advance(chunk: Buffer, stop: boolean): number {
    let i = 0;
    const n = chunk.length;
    while (i < n || (stop && this.atBoundary())) {
      if (stop && this.atBoundary()) return i;
      switch (this.phase) {
        case Phase.Lost:
          return -1;
        case Phase.Head:
          i = this.readHead(chunk, i);
          break;
        case Phase.Header:
          i = this.readHeader(chunk, i);
          break;
        case Phase.Payload: {
          const take = Math.min(this.remaining, n - i);
          this.remaining -= take;
          i += take;
          if (this.remaining === 0) this.phase = Phase.Header;
          break;
        }
      }
    }
    return -1;
  }

  private readHead(chunk: Buffer, i: number): number {
    const n = chunk.length;
    for (; i < n; i++) {
      const b = chunk[i]!;
      // "HTTP/1.1 101" — anything else carries no frames.
      if (this.headBytes === 9 && b !== 0x31) return this.lose(n);
      if ((this.headBytes === 10 || this.headBytes === 11) && b !== (this.headBytes === 10 ? 0x30 : 0x31)) return this.lose(n);
      this.headBytes++;
      this.matched = b === CRLFCRLF[this.matched] ? this.matched + 1 : b === 13 ? 1 : 0;
      if (this.matched === 4) {
        this.phase = Phase.Header;
        return i + 1;
      }
    }
    return n;
  }

  private readHeader(chunk: Buffer, i: number): number {
    const n = chunk.length;
    while (i < n) {
      this.header[this.headerHave++] = chunk[i++]!;
      if (this.headerHave < 2) continue;
      const len7 = this.header[1]! & 0x7f;
      const masked = (this.header[1]! & 0x80) !== 0;
      const need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
      if (this.headerHave < need) continue;
      let length = len7;
      if (len7 === 126) length = this.header.readUInt16BE(2);
      else if (len7 === 127) length = this.header.readUInt32BE(2) * 2 ** 32 + this.header.readUInt32BE(6);
      this.headerHave = 0;
      if (length > 0) {
        this.remaining = length;
        this.phase = Phase.Payload;
      }
      return i;
    }
    return i;
  }

  private lose(n: number): number {
    this.phase = Phase.Lost;
    return n;
  }
}
