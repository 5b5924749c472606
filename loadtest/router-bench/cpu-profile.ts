/**
 * Where a profiled router's CPU went: the V8 .cpuprofile files its processes wrote
 * (ROUTER_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR"), reduced to self time per function and
 * per package. Idle time is left out: the workers also lived through the other targets' runs.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

/** V8's profile format: what --cpu-prof writes and what the inspector's Profiler.stop returns. */
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  files: string[];
  busyMs: number;
  idleMs: number;
  top: Array<{ name: string; where: string; ms: number; share: number }>;
  byArea: Array<{ area: string; ms: number; share: number }>;
}

function area(url: string, name: string): string {
  if (name === '(garbage collector)') return 'garbage collector';
  if (name === '(program)') return 'V8/native, not attributed (program)';
  if (url.startsWith('node:')) return `node: ${url.slice(5).split('/')[0]}`;
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm !== null) return nm[1]!;
  const ours = /dist\/([^/]+\/(?:src\/)?[^/]+)/.exec(url);
  if (ours !== null) return `ours: ${ours[1]}`;
  return url === '' ? 'native/builtins' : url;
}

/** The profiles in `dir` written by the processes `pids` (the router's primary and workers), summarized together. */
export async function summarizeProfiles(dir: string, pids: Set<number>, topN = 20): Promise<ProfileSummary | null> {
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.cpuprofile'));
  const selected: string[] = [];
  const profiles: CpuProfile[] = [];
  for (const f of files) {
    // CPU.<yyyymmdd>.<hhmmss>.<pid>.<thread>.<seq>.cpuprofile
    const m = /^CPU\.\d+\.\d+\.(\d+)\./.exec(f);
    if (m === null || !pids.has(Number(m[1]))) continue;
    profiles.push(JSON.parse(await readFile(path.join(dir, f), 'utf8')) as CpuProfile);
    selected.push(f);
  }
  return summarizeCpuProfiles(profiles, selected, topN);
}

/** Self time per function and per area over `profiles` together; `names` label them in the report. */
export function summarizeCpuProfiles(profiles: CpuProfile[], names: string[], topN = 20): ProfileSummary | null {
  const self = new Map<string, { name: string; where: string; ms: number; area: string }>();
  let busy = 0;
  let idle = 0;
  for (const profile of profiles) {
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const local = new Map<number, number>();
    for (let i = 0; i < profile.samples.length; i++) {
      const id = profile.samples[i]!;
      local.set(id, (local.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
    }
    for (const [id, ms] of local) {
      const node = byId.get(id)!;
      const { functionName, url, lineNumber } = node.callFrame;
      if (functionName === '(idle)') {
        idle += ms;
        continue;
      }
      busy += ms;
      const name = functionName === '' ? '(anonymous)' : functionName;
      const where = url === '' ? '' : `${url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${lineNumber + 1}`;
      const key = `${name} ${where}`;
      const entry = self.get(key) ?? { name, where, ms: 0, area: area(url, functionName) };
      entry.ms += ms;
      self.set(key, entry);
    }
  }
  if (profiles.length === 0) return null;
  const areas = new Map<string, number>();
  for (const e of self.values()) areas.set(e.area, (areas.get(e.area) ?? 0) + e.ms);
  return {
    files: names,
    busyMs: busy,
    idleMs: idle,
    top: [...self.values()].sort((a, b) => b.ms - a.ms).slice(0, topN).map((e) => ({ name: e.name, where: e.where, ms: e.ms, share: e.ms / busy })),
    byArea: [...areas.entries()].sort((a, b) => b[1] - a[1]).map(([a, ms]) => ({ area: a, ms, share: ms / busy })),
  };
}

export function profileDirFromArgs(args: string): string | null {
  if (!args.includes('--cpu-prof')) return null;
  const m = /--cpu-prof-dir[= ](\S+)/.exec(args);
  return m === null ? process.cwd() : path.resolve(m[1]!);
}
