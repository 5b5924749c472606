/**
 * The handshake client processes (handshake-client.ts), started once per run and given one
 * job at a time together, their reports merged. Several processes because one Node event
 * loop doing TLS client handshakes saturates a core before a 2-worker server would.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { latencyOf, type Latency } from '../router-bench/load.js';
import { register, sleep, unregister } from '../router-bench/processes.js';
import type { ClientMessage, HandshakeJob, HandshakeReport, HandshakeSample } from './handshake-protocol.js';

export interface HandshakeRun {
  target: string;
  label: string;
  /** Successful handshakes (what CPU per handshake divides by). */
  ok: number;
  errors: number;
  errorKinds: Record<string, number>;
  reused: number;
  seconds: number;
  perSecond: number;
  latency: Latency;
  /** The client processes' CPU, all together: per handshake and in cores over the run. */
  clientUsPerHandshake: number;
  clientCores: number;
  samples: HandshakeSample[];
}

export type JobSpec = Omit<HandshakeJob, 'kind' | 'id' | 'names' | 'offset'>;

export class HandshakeFleet {
  private nextId = 0;

  private constructor(
    private readonly children: ChildProcess[],
    private readonly stoppers: Array<() => Promise<void>>,
  ) {}

  static async start(count: number, logFile: string): Promise<HandshakeFleet> {
    const entry = fileURLToPath(new URL('./handshake-client.js', import.meta.url));
    const children: ChildProcess[] = [];
    const stoppers: Array<() => Promise<void>> = [];
    for (let i = 0; i < count; i++) {
      const fd = openSync(logFile, 'a');
      const child = fork(entry, [], { stdio: ['ignore', fd, fd, 'ipc'] });
      closeSync(fd);
      const alive = (): boolean => child.exitCode === null && child.signalCode === null;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      const entryRef = {
        name: `handshake client ${i + 1}`,
        stop: async () => {
          if (alive()) {
            child.kill('SIGTERM');
            await Promise.race([exited, sleep(5_000)]);
            if (alive()) child.kill('SIGKILL');
          }
          unregister(entryRef);
        },
        kill: () => {
          if (alive()) child.kill('SIGKILL');
        },
      };
      register(entryRef);
      children.push(child);
      stoppers.push(entryRef.stop);
    }
    // A job sent before the child listens would wait in the pipe anyway; waiting for 'ready' also catches a child that cannot start.
    await Promise.all(children.map((c) => new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`handshake client ${c.pid} did not start within 10 s; see ${logFile}`)), 10_000);
      c.on('message', function ready(msg: ClientMessage) {
        if (msg.kind !== 'ready') return;
        clearTimeout(timer);
        c.off('message', ready);
        resolve();
      });
      c.once('exit', () => reject(new Error(`handshake client ${c.pid} exited at start; see ${logFile}`)));
    })));
    return new HandshakeFleet(children, stoppers);
  }

  async stop(): Promise<void> {
    await Promise.all(this.stoppers.map((stop) => stop()));
  }

  get size(): number {
    return this.children.length;
  }

  pids(): number[] {
    return this.children.map((c) => c.pid ?? -1);
  }

  /**
   * Runs `spec` in every process at once. `each`: the names are split between the processes
   * (every name handshaked exactly once in all); `duration`: every process cycles over all of
   * them from its own offset. `concurrency` is the total, split between the processes.
   */
  async run(target: string, label: string, spec: JobSpec, names: string[]): Promise<HandshakeRun> {
    const n = this.children.length;
    const reports = await Promise.all(this.children.map((child, k) => {
      const mine = spec.mode === 'each' ? names.filter((_, i) => i % n === k) : names;
      const job: HandshakeJob = {
        ...spec,
        kind: 'run',
        id: ++this.nextId,
        names: mine,
        offset: spec.mode === 'each' ? 0 : Math.floor((k * names.length) / n),
        concurrency: Math.max(1, Math.round(spec.concurrency / n)),
      };
      return this.send(child, job, spec.mode === 'each' ? 600_000 : spec.seconds * 1000 + 60_000);
    }));
    return merge(target, label, reports);
  }

  private send(child: ChildProcess, job: HandshakeJob, timeoutMs: number): Promise<HandshakeReport> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`handshake client ${child.pid} did not report within ${timeoutMs} ms`)), timeoutMs);
      const onMessage = (msg: ClientMessage): void => {
        if (msg.kind === 'ready' || msg.id !== job.id) return;
        if (msg.kind === 'failed') done(new Error(`handshake client ${child.pid}: ${msg.message}`));
        else done(null, msg);
      };
      const onExit = (): void => done(new Error(`handshake client ${child.pid} exited during a run`));
      const done = (err: Error | null, report?: HandshakeReport): void => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (err !== null) reject(err);
        else resolve(report!);
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
      child.send(job);
    });
  }
}

function merge(target: string, label: string, reports: HandshakeReport[]): HandshakeRun {
  const all = new Float64Array(reports.reduce((s, r) => s + r.latencies.length, 0));
  let at = 0;
  for (const r of reports) {
    all.set(r.latencies, at);
    at += r.latencies.length;
  }
  const ok = reports.reduce((s, r) => s + r.handshakes, 0);
  // The processes start within a millisecond of each other: the longest window is the run's.
  const seconds = Math.max(...reports.map((r) => r.elapsedMs)) / 1000;
  const clientMs = reports.reduce((s, r) => s + r.cpuUserMs + r.cpuSysMs, 0);
  const errorKinds: Record<string, number> = {};
  for (const r of reports) for (const [k, v] of Object.entries(r.errorKinds)) errorKinds[k] = (errorKinds[k] ?? 0) + v;
  return {
    target,
    label,
    ok,
    errors: reports.reduce((s, r) => s + r.errors, 0),
    errorKinds,
    reused: reports.reduce((s, r) => s + r.reused, 0),
    seconds,
    perSecond: ok / seconds,
    latency: latencyOf(all),
    clientUsPerHandshake: (clientMs * 1000) / ok,
    clientCores: clientMs / 1000 / seconds,
    samples: reports.flatMap((r) => (r.sample === undefined ? [] : [r.sample])),
  };
}
