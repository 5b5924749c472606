/**
 * Full handshakes per second, router against nginx, for each certificate set and TLS version:
 *
 * - cold pass: every name once, on a router that has never seen it (one Redis MGET, the key
 *   envelope opened, a SecureContext built: the first handshake of a name on a worker). nginx
 *   loaded every certificate at start, so its "cold" pass is an ordinary one;
 * - warm-up: passes over every name until one asks Redis nothing (each worker has each name);
 * - measured: a closed loop for `seconds`, rounds interleaved between the targets, with the
 *   server's CPU per handshake from /proc and the client's from its processes.
 */
import type { SecureVersion } from 'node:tls';
import { withCpu, type Measured, type RateStack } from '../router-bench/http-parts.js';
import { measured, type Quiet } from '../router-bench/machine.js';
import type { Progress } from '../router-bench/progress.js';
import type { CertSet, KeyType } from './certificates.js';
import type { HandshakeFleet, HandshakeRun, JobSpec } from './handshake-fleet.js';

export interface HandshakeTarget {
  name: 'router' | 'nginx';
  port: number;
}

export interface HandshakeOptions {
  versions: SecureVersion[];
  seconds: number;
  rounds: number;
  concurrency: number;
  /** Warm-up passes at most, per set. */
  maxWarmPasses: number;
}

export interface HandshakeStack {
  fleet: HandshakeFleet;
  host: string;
  /** Every test CA's certificate: the client trusts them all. */
  ca: string[];
  sets: CertSet[];
  targets: HandshakeTarget[];
  quiet: Quiet;
  progress: Progress;
  cpu: Pick<RateStack, 'proxyPids' | 'backendPids'>;
  /** Redis lookups the router's SNI callback made so far, all workers together (its /metrics). */
  routerLookups(): Promise<number>;
}

export type HandshakePhase = Measured<HandshakeRun> & {
  keyType: KeyType;
  version: SecureVersion;
  kind: 'cold' | 'warm';
  round: number;
  /** Router only: certificate lookups in Redis during the run (0 when its caches were warm). */
  lookups?: number;
};

export interface WarmUp {
  keyType: KeyType;
  passes: number;
  /** Lookups during each pass: the last is 0 unless the passes ran out. */
  lookupsPerPass: number[];
}

export interface Ratio {
  keyType: KeyType;
  version: SecureVersion;
  router: number;
  nginx: number;
  ratio: number;
}

export interface HandshakeResults {
  options: HandshakeOptions;
  cold: HandshakePhase[];
  warm: HandshakePhase[];
  warmUps: WarmUp[];
  /** Medians over the rounds, warm. */
  ratios: Ratio[];
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const short = (v: SecureVersion): string => v.replace('TLSv', 'TLS ');

/** One measured run against `target`, with the router's Redis lookups counted when it is the router. */
async function once(stack: HandshakeStack, target: HandshakeTarget, set: CertSet, spec: JobSpec, label: string): Promise<Measured<HandshakeRun> & { lookups?: number }> {
  const before = target.name === 'router' ? await stack.routerLookups() : 0;
  const run = await withCpu(stack.cpu, target.name, () => stack.fleet.run(target.name, label, spec, set.names));
  if (target.name !== 'router') return run;
  return { ...run, lookups: (await stack.routerLookups()) - before };
}

/**
 * Round-robin accept spreads a name's handshakes over the workers: passes over every name
 * (each in another order, so a name does not keep landing on the same worker) until two in a
 * row had none of them ask Redis, at most `maxPasses`.
 */
export async function warmUp(fleet: HandshakeFleet, port: number, set: CertSet, base: Pick<JobSpec, 'host' | 'ca' | 'concurrency' | 'version'>, lookups: () => Promise<number>, maxPasses: number, progress: Progress): Promise<WarmUp> {
  const lookupsPerPass: number[] = [];
  for (let pass = 1; pass <= maxPasses; pass++) {
    progress.step(`handshakes: router, ${set.label}, warm-up pass ${pass}`, 1);
    const shift = (pass * 7) % set.names.length;
    const order = [...set.names.slice(shift), ...set.names.slice(0, shift)];
    const before = await lookups();
    const r = await fleet.run('router', 'warm-up', { ...base, port, mode: 'each', seconds: 0 }, order);
    const asked = (await lookups()) - before;
    lookupsPerPass.push(asked);
    if (r.errors > 0) progress.note(`warm-up pass ${pass}: ${r.errors} errors ${JSON.stringify(r.errorKinds)}`);
    if (asked === 0 && lookupsPerPass.at(-2) === 0) break;
  }
  return { keyType: set.keyType, passes: lookupsPerPass.length, lookupsPerPass };
}

export async function handshakes(stack: HandshakeStack, o: HandshakeOptions): Promise<HandshakeResults> {
  const cold: HandshakePhase[] = [];
  const warm: HandshakePhase[] = [];
  const warmUps: WarmUp[] = [];
  const base = { host: stack.host, ca: stack.ca, concurrency: o.concurrency };
  const note = (r: HandshakeRun & { lookups?: number; machine: { foreignCores: number } }): void =>
    stack.progress.note(`${r.ok} handshakes, ${Math.round(r.perSecond)}/s, ${r.errors} errors${r.errors > 0 ? ` ${JSON.stringify(r.errorKinds)}` : ''}, p99 ${r.latency.p99.toFixed(2)} ms${r.lookups !== undefined ? `, ${r.lookups} Redis lookups` : ''}; client ${r.clientCores.toFixed(2)} cores; other load ${r.machine.foreignCores.toFixed(2)} cores`);

  for (const set of stack.sets) {
    const first = o.versions[0]!;
    for (const target of stack.targets) {
      stack.progress.step(`handshakes: ${target.name}, ${set.label}, cold pass over ${set.names.length} names (${short(first)})`, 2);
      // Cold happens once: waited for a quiet second, never repeated.
      await stack.quiet.settle();
      const spec: JobSpec = { ...base, port: target.port, mode: 'each', seconds: 0, version: first };
      const r = await measured(() => once(stack, target, set, spec, `${set.label}, ${short(first)}, first handshake per name`));
      cold.push({ ...r, keyType: set.keyType, version: first, kind: 'cold', round: 1 });
      note(r);
    }
    const router = stack.targets.find((t) => t.name === 'router');
    if (router !== undefined) warmUps.push(await warmUp(stack.fleet, router.port, set, { ...base, version: first }, stack.routerLookups, o.maxWarmPasses, stack.progress));
    for (const version of o.versions) {
      for (let round = 1; round <= o.rounds; round++) {
        for (const target of stack.targets) {
          stack.progress.step(`handshakes: ${target.name}, ${set.label}, ${short(version)}, concurrency ${o.concurrency}, round ${round}/${o.rounds}`, o.seconds + 1);
          const spec: JobSpec = { ...base, port: target.port, mode: 'duration', seconds: o.seconds, version };
          const r = await stack.quiet.run(() => once(stack, target, set, spec, `${set.label}, ${short(version)}`));
          warm.push({ ...r, keyType: set.keyType, version, kind: 'warm', round });
          note(r);
        }
      }
    }
  }

  const ratios: Ratio[] = [];
  for (const set of stack.sets) {
    for (const version of o.versions) {
      const of = (t: string): number => median(warm.filter((w) => w.keyType === set.keyType && w.version === version && w.target === t).map((w) => w.perSecond));
      ratios.push({ keyType: set.keyType, version, router: of('router'), nginx: of('nginx'), ratio: of('router') / of('nginx') });
    }
  }
  return { options: o, cold, warm, warmUps, ratios };
}
