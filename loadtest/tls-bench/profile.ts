/**
 * Where the router's CPU goes during warm full handshakes, on a router of its own (started
 * with an inspector, so the measured one runs exactly as deployed):
 *
 * - V8's CPU profiler in every router process, started and stopped through the inspector
 *   around one closed-loop window per certificate set, so the profile holds that window only
 *   (no start-up, no cold lookups, no other part). JavaScript self time is exact; native
 *   work with no JavaScript below it (OpenSSL inside the handshake, reading sockets) shows as
 *   "(program)" — which is where perf comes in (perf.ts).
 */
import type { SecureVersion } from 'node:tls';
import { summarizeCpuProfiles, type CpuProfile, type ProfileSummary } from '../router-bench/cpu-profile.js';
import { DevtoolsSession, inspectorUrls } from '../router-bench/inspector.js';
import { sleep, waitUntil, type RouterProcess } from '../router-bench/processes.js';
import type { CertSet, KeyType } from './certificates.js';
import type { HandshakeFleet, HandshakeRun, JobSpec } from './handshake-fleet.js';

export interface ProfileWindow {
  keyType: KeyType;
  version: SecureVersion;
  /** The closed loop that ran meanwhile (slowed a little by the profiler). */
  run: HandshakeRun;
  workers: ProfileSummary | null;
  primary: ProfileSummary | null;
}

interface Session {
  pid: number;
  primary: boolean;
  session: DevtoolsSession;
}

/** One inspector session per router process (primary and workers), each knowing its pid. */
export async function openSessions(router: RouterProcess, workers: number): Promise<Session[]> {
  await waitUntil(`${workers + 1} inspectors announced in the router log`, async () => (await inspectorUrls(router.logFile)).length >= workers + 1, 20_000, router.child);
  const sessions: Session[] = [];
  for (const url of await inspectorUrls(router.logFile)) {
    const session = await DevtoolsSession.open(url);
    const r = (await session.call('Runtime.evaluate', { expression: 'process.pid', returnByValue: true })) as { result: { value: number } };
    sessions.push({ pid: r.result.value, primary: r.result.value === router.child.pid, session });
  }
  return sessions;
}

/** Runs `spec` against the profiled router while every process's profiler records; one window. */
export async function profileWindow(sessions: Session[], fleet: HandshakeFleet, set: CertSet, spec: JobSpec): Promise<ProfileWindow> {
  for (const s of sessions) {
    await s.session.call('Profiler.enable');
    // 1 ms: the default; finer sampling would cost the router more than it tells.
    await s.session.call('Profiler.setSamplingInterval', { interval: 1000 });
  }
  await Promise.all(sessions.map((s) => s.session.call('Profiler.start')));
  const run = await fleet.run('router (profiled)', `${set.label}, profiled`, spec, set.names);
  const stopped = await Promise.all(sessions.map(async (s) => ({ s, profile: ((await s.session.call('Profiler.stop', {}, 120_000)) as { profile: CpuProfile }).profile })));
  for (const s of sessions) await s.session.call('Profiler.disable');
  const pick = (primary: boolean): ProfileSummary | null => {
    const chosen = stopped.filter((x) => x.s.primary === primary);
    return summarizeCpuProfiles(chosen.map((x) => x.profile), chosen.map((x) => `pid ${x.s.pid}`), primary ? 8 : 25);
  };
  // Let the sockets of the window close before the next one starts.
  await sleep(200);
  return { keyType: set.keyType, version: spec.version, run, workers: pick(false), primary: pick(true) };
}

export function closeSessions(sessions: Session[]): void {
  for (const s of sessions) s.session.close();
}
