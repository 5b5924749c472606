/**
 * How much of the machine a run had. On a shared two-core VM a build or a test run started by
 * someone else during a phase changes its figures more than anything measured; rather than
 * trust a quiet machine, each phase records the CPU used by processes outside this benchmark's
 * process tree (and the hypervisor's steal), and the report flags the phases where it was high.
 */
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import { readText, run } from './processes.js';

/** Linux reports CPU times in USER_HZ ticks, 100 per second on every mainstream build. */
const TICK_MS = 10;

export interface CpuSnapshot {
  at: number;
  /** Everything but idle, iowait and steal, ms. Softirq included: a process's system time also counts the softirq ticks it ran. */
  busyMs: number;
  stealMs: number;
  /** This process and every descendant, including what reaped children used (cutime/cstime). */
  oursMs: number;
}

export interface MachineShare {
  /** Cores used by other processes (kernel threads such as ksoftirqd included), on average over the phase. */
  foreignCores: number;
  stealCores: number;
  oursCores: number;
}

/** Above this many cores of other processes' CPU, a phase is marked as disturbed. */
export const DISTURBED_CORES = 0.15;

/**
 * Another process's work, or the hypervisor's steal (other VMs on the host), above
 * DISTURBED_CORES: either takes the cores away from what a phase measures (a run at 500
 * req/s with 0.6 core stolen had its p99 4x the next phase's).
 */
export function disturbed(m: Pick<MachineShare, 'foreignCores' | 'stealCores'>): boolean {
  return m.foreignCores > DISTURBED_CORES || m.stealCores > DISTURBED_CORES;
}

async function stat(pid: string): Promise<{ ppid: number; ms: number } | null> {
  const text = await readText(`/proc/${pid}/stat`);
  if (text === '') return null;
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // After the name: state ppid … utime(11) stime(12) cutime(13) cstime(14).
  return { ppid: Number(f[1]), ms: (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * TICK_MS };
}

export async function snapshot(): Promise<CpuSnapshot> {
  const cpu = (await readText('/proc/stat')).split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = cpu;
  const procs = new Map<number, { ppid: number; ms: number }>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = await stat(name);
    if (s !== null) procs.set(Number(name), s);
  }
  const children = new Map<number, number[]>();
  for (const [pid, s] of procs) children.set(s.ppid, [...(children.get(s.ppid) ?? []), pid]);
  let ours = 0;
  const stack = [process.pid];
  // Bounded by the number of processes: a pid is visited once, the tree has no cycles.
  for (let guard = 0; stack.length > 0 && guard <= procs.size; guard++) {
    const pid = stack.pop()!;
    ours += procs.get(pid)?.ms ?? 0;
    stack.push(...(children.get(pid) ?? []));
  }
  return { at: performance.now(), busyMs: (user + nice + system + irq + softirq) * TICK_MS, stealMs: steal * TICK_MS, oursMs: ours };
}

export function share(a: CpuSnapshot, b: CpuSnapshot): MachineShare {
  const wall = b.at - a.at;
  const ours = b.oursMs - a.oursMs;
  return {
    foreignCores: Math.max(0, b.busyMs - a.busyMs - ours) / wall,
    stealCores: (b.stealMs - a.stealMs) / wall,
    oursCores: ours / wall,
  };
}

export async function measured<T>(work: () => Promise<T>): Promise<T & { machine: MachineShare }> {
  const a = await snapshot();
  const result = await work();
  return { ...result, machine: share(a, await snapshot()) };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits out other people's work before a phase, and repeats a phase it disturbed. Bounded
 * twice: per phase (attempts, a wait of at most `maxWaitMs`) and for the whole run
 * (`budgetMs` of waiting and repeating), so a machine that never quiets down still gives a
 * report — with its disturbed phases flagged — in bounded time.
 */
export class Quiet {
  private spentMs = 0;
  retries = 0;

  constructor(
    private readonly budgetMs: number,
    private readonly note: (text: string) => void,
    private readonly maxWaitMs = 60_000,
  ) {}

  /** Resolves once a 1 s window had less than DISTURBED_CORES of other work, or when out of patience. */
  async settle(): Promise<void> {
    const started = performance.now();
    const deadline = started + Math.min(this.maxWaitMs, Math.max(0, this.budgetMs - this.spentMs));
    let warned = false;
    for (;;) {
      const a = await snapshot();
      await sleep(1_000);
      const s = share(a, await snapshot());
      if (!disturbed(s) || performance.now() >= deadline) break;
      if (!warned) this.note(`other processes use ${s.foreignCores.toFixed(2)} cores (steal ${s.stealCores.toFixed(2)}): waiting for them (at most ${Math.round((deadline - performance.now()) / 1000)} s)`);
      warned = true;
    }
    // The first second is the check every phase pays; only waiting beyond it is budgeted.
    this.spentMs += Math.max(0, performance.now() - started - 1_000);
  }

  /** The report's line on what this did. */
  describe(): string {
    return `phases repeated because other processes or the hypervisor's steal disturbed them: ${this.retries} (each phase waits for a quiet second first; at most 3 attempts, ${Math.round(this.budgetMs / 1000)} s of waiting and repeating in all)`;
  }

  /** Runs `attempt` after settle(); again (at most `attempts` times) while it was disturbed and the budget lasts. */
  async run<T extends { machine: MachineShare }>(attempt: () => Promise<T>, attempts = 3): Promise<T & { attempts: number }> {
    let last: T | null = null;
    for (let i = 1; i <= attempts; i++) {
      await this.settle();
      const started = performance.now();
      last = await attempt();
      if (!disturbed(last.machine) || i === attempts || this.spentMs >= this.budgetMs) return { ...last, attempts: i };
      this.spentMs += performance.now() - started;
      this.retries++;
      this.note(`disturbed (${last.machine.foreignCores.toFixed(2)} cores of other work, ${last.machine.stealCores.toFixed(2)} stolen): running it again`);
    }
    return { ...last!, attempts };
  }
}

async function versionOf(command: string, args: string[], re: RegExp): Promise<string> {
  const { stdout, stderr } = await run(command, args);
  return re.exec(`${stdout}${stderr}`)?.[1] ?? 'not installed';
}

/** The report's machine line: CPUs, memory, kernel, the versions of everything measured, the load at start. */
export async function describeMachine(nginxVersion: string): Promise<string> {
  const cpus = os.cpus();
  const redis = await versionOf('redis-server', ['--version'], /v=(\S+)/);
  const wrkVersion = await versionOf('wrk', ['--version'], /wrk (\S+)/);
  const load = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  return `${cpus.length} × ${cpus[0]?.model.trim() ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, Node ${process.version} (OpenSSL ${process.versions.openssl}), nginx ${nginxVersion}, redis ${redis}, wrk ${wrkVersion}; load generator in the same VM on the same cores; load average at start ${load}`;
}
