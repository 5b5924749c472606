/**
 * The node flags the primary forks its workers with: its own (cluster's default), plus the
 * young generation's size unless the operator set one. Measured on the router's workload
 * (docs/BENCHMARKS.md): every request leaves a few KiB of short-lived objects, and V8's
 * default semi-space makes the scavenger run often enough to take ~10% of a busy worker.
 */
const SEMI_SPACE_FLAG = /(?:^|\s)--max[-_]semi[-_]space[-_]size(?:=|\s|$)/;

/** `semiSpaceMb` 0: V8's default. `nodeOptions`: the NODE_OPTIONS the workers inherit. */
export function workerExecArgv(execArgv: readonly string[], nodeOptions: string | undefined, semiSpaceMb: number): string[] {
  if (semiSpaceMb === 0 || semiSpaceSetIn(execArgv, nodeOptions)) return [...execArgv];
  return [...execArgv, `--max-semi-space-size=${semiSpaceMb}`];
}

/** Whether node already runs with --max-semi-space-size (its flags, or NODE_OPTIONS). */
export function semiSpaceSetIn(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  return execArgv.some((arg) => SEMI_SPACE_FLAG.test(arg)) || (nodeOptions !== undefined && SEMI_SPACE_FLAG.test(nodeOptions));
}
