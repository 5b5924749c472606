/**
 * Collects encoded access-log lines per app and cuts them into batches: when the batch's
 * BATCH body would reach `maxBytes`, or `maxMs` after its first line, whichever comes first.
 *
 * `append` is called on the request path, so it only concatenates a string and adds to a
 * count: a batch cut by size is set aside and handed on from a setImmediate, and the time
 * bound is one timer per batch, never one per line. Nothing here does I/O.
 */
import { UNROUTED_SECTION } from '../../../proto/log-batch.js';
import { isValidAppName } from '../../../proto/names.js';

/** A batch, cut: the sections encodeBatch takes, and how many lines each holds (to count drops by app). */
export interface CutBatch {
  sections: Array<{ app: string; data: Buffer }>;
  /** Lines per section, in the order of `sections`. */
  lines: number[];
  lineCount: number;
  /** Size of the BATCH body (seq and section headers included): what LOG_BATCH_BYTES bounds. */
  bodyBytes: number;
}

export interface BatcherOptions {
  maxBytes: number;
  maxMs: number;
  onBatch: (batch: CutBatch) => void;
}

interface PendingSection {
  /** The lines, concatenated (V8 keeps a rope until the batch is encoded). */
  text: string;
  lines: number;
}

/** A BATCH body starts with a u48 seq; each section adds u8 app length, the app, u32 data length. */
const SEQ_BYTES = 6;
const SECTION_HEADER = 5;

export class Batcher {
  private pending = new Map<string, PendingSection>();
  private bodyBytes = SEQ_BYTES;
  private lineCount = 0;
  private timer: NodeJS.Timeout | null = null;
  /** Batches cut by size inside `append`, handed on from the next setImmediate. */
  private ready: Array<Map<string, PendingSection>> = [];
  private readyBytes: number[] = [];
  private readyScheduled = false;

  constructor(private readonly options: BatcherOptions) {}

  /**
   * `line`: one NDJSON line ending in '\n', ASCII only (so its length is its size in bytes).
   * `app`: the line's app, or '-' when none.
   */
  append(app: string, line: string): void {
    let section = this.pending.get(app);
    let cost = line.length + (section === undefined ? SECTION_HEADER + sectionName(app).length : 0);
    if (this.lineCount > 0 && this.bodyBytes + cost > this.options.maxBytes) {
      this.cutBySize();
      section = undefined;
      cost = line.length + SECTION_HEADER + sectionName(app).length;
    }
    if (section === undefined) {
      this.pending.set(app, { text: line, lines: 1 });
    } else {
      section.text += line;
      section.lines++;
    }
    this.bodyBytes += cost;
    if (this.lineCount++ === 0) this.timer = setTimeout(this.onTimer, this.options.maxMs);
    // Only a line as large as a whole batch gets here: it goes alone.
    if (this.bodyBytes >= this.options.maxBytes) this.cutBySize();
  }

  /** Lines not yet cut into a batch. */
  get pendingLines(): number {
    return this.lineCount;
  }

  /** Cuts what is pending now and hands every batch on synchronously (shutdown). */
  flush(): void {
    this.handReady();
    this.cutNow();
  }

  /** Stops the timer; pending lines are discarded (call flush first to keep them). */
  close(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    // Batches cut by size earlier go first, so batches stay in order.
    this.handReady();
    this.cutNow();
  };

  private cutBySize(): void {
    this.ready.push(this.pending);
    this.readyBytes.push(this.bodyBytes);
    this.reset();
    if (!this.readyScheduled) {
      this.readyScheduled = true;
      setImmediate(this.handReady);
    }
  }

  private cutNow(): void {
    if (this.lineCount === 0) return;
    const pending = this.pending;
    const bytes = this.bodyBytes;
    this.reset();
    this.options.onBatch(toBatch(pending, bytes));
  }

  private reset(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.pending = new Map();
    this.bodyBytes = SEQ_BYTES;
    this.lineCount = 0;
  }

  private readonly handReady = (): void => {
    this.readyScheduled = false;
    const ready = this.ready;
    const bytes = this.readyBytes;
    if (ready.length === 0) return;
    this.ready = [];
    this.readyBytes = [];
    for (let i = 0; i < ready.length; i++) this.options.onBatch(toBatch(ready[i]!, bytes[i]!));
  };
}

/** The section a line goes to: its app, or UNROUTED_SECTION when it has none (or one a section cannot name). */
function sectionName(app: string): string {
  return app === UNROUTED_SECTION || isValidAppName(app) ? app : UNROUTED_SECTION;
}

function toBatch(pending: Map<string, PendingSection>, bodyBytes: number): CutBatch {
  const byName = new Map<string, { texts: string[]; lines: number }>();
  for (const [app, section] of pending) {
    const name = sectionName(app);
    const into = byName.get(name);
    if (into === undefined) byName.set(name, { texts: [section.text], lines: section.lines });
    else {
      into.texts.push(section.text);
      into.lines += section.lines;
    }
  }
  const sections: CutBatch['sections'] = [];
  const lines: number[] = [];
  let lineCount = 0;
  for (const [app, { texts, lines: n }] of byName) {
    // Lines are ASCII (line-encoder.ts): latin1 is a plain copy.
    sections.push({ app, data: Buffer.from(texts.length === 1 ? texts[0]! : texts.join(''), 'latin1') });
    lines.push(n);
    lineCount += n;
  }
  return { sections, lines, lineCount, bodyBytes };
}
