/**
 * The TLS benchmark's constant rates: router-bench's paced client for plain HTTP and
 * keep-alive HTTPS, h2load for a new connection per request; rate by rate, targets interleaved
 * in the order given, so that slow drift of the machine touches them alike.
 */
import { ratePhase, warmUpTargets, type Measured, type RateStack } from '../router-bench/http-parts.js';
import type { PacedTarget, RateResult } from '../router-bench/load.js';
import { newConnectionPhase, newConnectionWarmUp, type NewConnectionResult, type NewConnectionTarget } from './new-connections.js';

export type LadderTarget = { kind: 'paced'; target: PacedTarget } | { kind: 'new connections'; target: NewConnectionTarget };

export interface LadderOptions {
  rates: number[];
  seconds: number;
  /** Once per target, at 500/s, before the first rate. */
  warmSeconds: number;
  /** Unrecorded lead-in of every phase at its rate. */
  phaseWarmSeconds: number;
  /** h2load's outputs and logs. */
  dir: string;
}

export async function tlsRateLadder(stack: RateStack, targets: LadderTarget[], o: LadderOptions): Promise<{ rates: Array<Measured<RateResult>>; newConnections: Array<Measured<NewConnectionResult>> }> {
  await warmUpTargets(stack, targets.flatMap((t) => (t.kind === 'paced' ? [t.target] : [])), o.warmSeconds);
  for (const t of targets) {
    if (t.kind !== 'new connections') continue;
    stack.progress.step(`https, new connections (h2load): warm-up ${t.target.name} at 500/s`, o.warmSeconds);
    await newConnectionWarmUp(t.target, 500, o.warmSeconds, o.dir);
  }
  const rates: Array<Measured<RateResult>> = [];
  const newConnections: Array<Measured<NewConnectionResult>> = [];
  for (const rate of o.rates) {
    for (const t of targets) {
      if (t.kind === 'paced') rates.push(await ratePhase(stack, t.target, rate, o.seconds, o.phaseWarmSeconds));
      else newConnections.push(await newConnectionPhase(stack, t.target, rate, { seconds: o.seconds, leadInSeconds: o.phaseWarmSeconds, dir: o.dir }));
    }
  }
  return { rates, newConnections };
}
