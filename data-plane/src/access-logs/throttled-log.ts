/**
 * At most one log line per key per interval: a shipper that is down, or a bug that repeats
 * per batch, must not turn the router's own log into a flood. Lines suppressed meanwhile are
 * counted in the next one (`suppressed`).
 */
import type { Logger } from 'pino';

type Level = 'error' | 'warn' | 'info';

export class ThrottledLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly log: Logger,
    private readonly intervalMs = 60_000,
  ) {}

  write(level: Level, key: string, fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    const seen = this.last.get(key);
    if (seen !== undefined && now - seen.at < this.intervalMs) {
      seen.suppressed++;
      return;
    }
    const suppressed = seen?.suppressed ?? 0;
    this.last.set(key, { at: now, suppressed: 0 });
    this.log[level](suppressed > 0 ? { ...fields, suppressed } : fields, message);
  }
}
