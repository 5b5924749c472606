/**
 * h2load as the generator of new TLS connections at a fixed rate: a C client (OpenSSL, one
 * libev loop) that opens K connections every period, one request on each, so that the
 * figures are the servers' and not a Node client's (a Node TLS handshake costs the client about
 * as much CPU as the server, and one Node process falls seconds behind from ~300/s here).
 *
 * Every connection is a full handshake: h2load keeps no session between its connections (the
 * run checks it on the router's resumption counter). SNI and Host come from the URL's name,
 * the address from --connect-to, so no name needs to resolve.
 */
import { readFile, rm } from 'node:fs/promises';
import { run, sleep, spawnLogged, type Child } from '../router-bench/processes.js';
import { parseH2loadLog, parseH2loadSummary, type H2loadLog, type H2loadSummary } from './h2load-output.js';

export const H2LOAD = 'h2load';

export class H2loadError extends Error {
  constructor(
    readonly code: 'H2LOAD_MISSING' | 'H2LOAD_FAILED' | 'H2LOAD_TIMEOUT',
    message: string,
  ) {
    super(message);
  }
}

/** h2load's version line, or a clear error when it is not installed. */
export async function requireH2load(): Promise<string> {
  const { stdout } = await run(H2LOAD, ['--version']);
  const version = /h2load nghttp2\/(\S+)/.exec(stdout)?.[1];
  if (version === undefined) {
    throw new H2loadError('H2LOAD_MISSING', 'h2load not found: the new-connection rates need it (Debian: `sudo apt-get install -y nghttp2-client`); or run `--only handshakes`');
  }
  return version;
}

/**
 * `perPeriod` connections every `periodMs`: 10 ms when the rate allows a whole number per 10 ms,
 * else the shortest multiple of 10 ms that does (250/s: 5 every 20 ms). A short period keeps the
 * bursts small; a whole number of ms keeps h2load's timer exact. Coarse periods (a rate such as
 * 333/s: 333 every second) are bursty, and the report shows the period.
 */
export function ratePlan(rate: number): { perPeriod: number; periodMs: number } {
  if (!Number.isInteger(rate) || rate <= 0) throw new RangeError(`rate must be a positive integer, got ${rate}`);
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  const tens = 100 / gcd(rate, 100);
  return { perPeriod: (rate * tens) / 100, periodMs: 10 * tens };
}

export interface H2loadJob {
  /** The name sent as SNI and Host. */
  host: string;
  address: string;
  port: number;
  rate: number;
  seconds: number;
  /** A request (or a connection) that takes longer is a timeout: an error. */
  timeoutSeconds: number;
  /** Where h2load's output and per-request log go (kept with the run's logs). */
  outputFile: string;
  logFile: string;
}

export function h2loadArgs(job: H2loadJob): string[] {
  const { perPeriod, periodMs } = ratePlan(job.rate);
  const connections = Math.max(1, Math.round(job.rate * job.seconds));
  return [
    '--h1',
    // One client per connection, one request each: -n = -c.
    '-c', String(connections),
    '-n', String(connections),
    '-r', String(perPeriod),
    '--rate-period', `${periodMs}ms`,
    '-t', '1',
    // A connection open longer (handshake included), or silent longer, is a timeout.
    '-T', `${job.timeoutSeconds}s`,
    '-N', `${job.timeoutSeconds}s`,
    '--connect-to', `${job.address}:${job.port}`,
    '--log-file', job.logFile,
    `https://${job.host}:${job.port}/`,
  ];
}

export interface H2loadRun {
  args: string[];
  summary: H2loadSummary;
  log: H2loadLog;
  /** From spawn to exit. */
  wallMs: number;
  /** h2load's own CPU (user + system), from this process's reaped-children times. */
  cpuMs: number;
}

/** This process's cutime + cstime: the CPU of the children it has reaped, in ms (10 ms ticks). */
async function reapedChildrenCpuMs(): Promise<number> {
  const stat = await readFile('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) * 10;
}

/**
 * Runs h2load once and reads its summary and log. Bounded: killed (its pid only) when it
 * outlives the schedule plus `timeoutSeconds` plus a margin. Its CPU is the growth of this
 * process's reaped-children time across the run — exact as long as no other child of this
 * process exits meanwhile, which holds here: the benchmark's other children (servers) live
 * for the whole run and nothing else is spawned during a phase.
 */
export async function runH2load(job: H2loadJob): Promise<H2loadRun> {
  const args = h2loadArgs(job);
  const limitMs = (job.seconds + job.timeoutSeconds + 20) * 1000;
  // A repeated phase reuses the names: h2load's output would be appended to the last one's.
  await Promise.all([rm(job.outputFile, { force: true }), rm(job.logFile, { force: true })]);
  const cpuBefore = await reapedChildrenCpuMs();
  const started = performance.now();
  const child: Child = spawnLogged('h2load', H2LOAD, args, process.env, job.outputFile);
  const finished = await Promise.race([child.exited.then(() => true), sleep(limitMs).then(() => false)]);
  if (!finished) {
    await child.stop('SIGKILL');
    throw new H2loadError('H2LOAD_TIMEOUT', `h2load still running after ${limitMs / 1000} s: killed (pid ${child.pid}); output in ${job.outputFile}`);
  }
  const wallMs = performance.now() - started;
  // Unregisters it; it has exited, so nothing is signalled.
  await child.stop();
  const cpuMs = (await reapedChildrenCpuMs()) - cpuBefore;
  const output = await readFile(job.outputFile, 'utf8').catch(() => '');
  if (child.proc.exitCode !== 0) {
    throw new H2loadError('H2LOAD_FAILED', `h2load exited with ${child.proc.exitCode ?? child.proc.signalCode} (${H2LOAD} ${args.join(' ')}):\n${output.slice(-2000)}`);
  }
  const summary = parseH2loadSummary(output);
  const log = parseH2loadLog(await readFile(job.logFile, 'utf8'));
  return { args, summary, log, wallMs, cpuMs };
}
