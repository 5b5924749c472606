/**
 * Progress on stderr (stdout carries the report): what runs now, how long the run has taken
 * and roughly how long is left, from the planned length of the steps not yet started.
 */
export function mmss(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

export class Progress {
  private readonly started = performance.now();
  private consumed = 0;
  private current = 0;

  constructor(private planned: number) {}

  /** A step of about `seconds` begins; the previous one is over. */
  step(label: string, seconds: number): void {
    this.consumed += this.current;
    this.current = seconds;
    this.print(`${label}${seconds >= 1 ? ` (~${Math.round(seconds)} s)` : ''}`);
  }

  /** A line inside the current step. */
  note(text: string): void {
    this.print(`  ${text}`);
  }

  /** Steps the plan did not know about (a part skipped, or longer than thought). */
  replan(extraSeconds: number): void {
    this.planned += extraSeconds;
  }

  elapsed(): number {
    return (performance.now() - this.started) / 1000;
  }

  private print(text: string): void {
    const left = Math.max(0, this.planned - this.consumed);
    process.stderr.write(`[${mmss(this.elapsed())} elapsed, ~${mmss(left)} left] ${text}\n`);
  }
}
