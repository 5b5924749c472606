export interface AppLines { app: string; data: Buffer; lines: number } // data: whole lines, each ending '\n'
export interface LogBackend {
  readonly name: 'file' | 'bullmq';
  /** Resolves once the lines are durable as this backend's contract says; rejects if not (the batch is then acked UNAVAILABLE). */
  write(batch: readonly AppLines[]): Promise<void>;
  /** Called on SIGHUP. */
  reopen(): Promise<void>;
  close(): Promise<void>;
}
