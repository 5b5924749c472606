/**
 * The TLS benchmark's command line: its parts, options and their defaults (full and --quick),
 * and how long each part should take (for the progress line only).
 */
import type { SecureVersion } from 'node:tls';

export const PARTS = ['handshakes', 'rates'] as const;
export type Part = (typeof PARTS)[number];

export interface Options {
  parts: Part[];
  quick: boolean;
  names: number;
  versions: SecureVersion[];
  seconds: number;
  rounds: number;
  concurrency: number;
  clients: number;
  profile: boolean;
  perf: boolean;
  profileSeconds: number;
  rates: number[];
  rateSeconds: number;
  warmSeconds: number;
  keepLogs: boolean;
}

const USAGE = `usage: tls-bench [--quick] [--only handshakes|rates] [--names N] [--tls 1.3,1.2] [--seconds N] [--rounds N]
  [--concurrency N] [--clients N] [--profile-seconds N] [--no-profile] [--no-perf] [--rates 100,250,...] [--rate-seconds N] [--keep-logs]`;

export function parseArgs(argv: string[]): Options {
  const quick = argv.includes('--quick');
  const o: Options = quick
    ? { parts: [...PARTS], quick, names: 100, versions: ['TLSv1.3', 'TLSv1.2'], seconds: 2, rounds: 1, concurrency: 32, clients: 2, profile: true, perf: true, profileSeconds: 2, rates: [250, 1000], rateSeconds: 2, warmSeconds: 1, keepLogs: false }
    : { parts: [...PARTS], quick, names: 1000, versions: ['TLSv1.3', 'TLSv1.2'], seconds: 10, rounds: 3, concurrency: 32, clients: 2, profile: true, perf: true, profileSeconds: 10, rates: [100, 250, 500, 750, 1000], rateSeconds: 10, warmSeconds: 3, keepLogs: false };
  const numbers = (flag: string, raw: string | undefined): number[] => {
    const values = (raw ?? '').split(',').map(Number);
    if (raw === undefined || !values.every((v) => Number.isInteger(v) && v > 0)) throw new Error(`${flag} needs positive integers\n${USAGE}`);
    return values;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--quick') continue;
    if (flag === '--keep-logs') o.keepLogs = true;
    else if (flag === '--no-profile') o.profile = false;
    else if (flag === '--no-perf') o.perf = false;
    else {
      const raw = argv[++i];
      const one = (): number => {
        const v = numbers(flag, raw);
        if (v.length !== 1) throw new Error(`${flag} takes one number\n${USAGE}`);
        return v[0]!;
      };
      switch (flag) {
        case '--only': {
          const parts = (raw ?? '').split(',');
          const bad = parts.filter((p) => !(PARTS as readonly string[]).includes(p));
          if (bad.length > 0 || raw === undefined) throw new Error(`unknown part ${bad.join(',') || '(none)'}\n${USAGE}`);
          o.parts = parts as Part[];
          break;
        }
        case '--tls': {
          const versions = (raw ?? '').split(',').map((v) => `TLSv${v}`);
          if (raw === undefined || !versions.every((v) => v === 'TLSv1.3' || v === 'TLSv1.2')) throw new Error(`--tls takes 1.3 and/or 1.2\n${USAGE}`);
          o.versions = versions as SecureVersion[];
          break;
        }
        case '--names': o.names = one(); break;
        case '--seconds': o.seconds = one(); break;
        case '--rounds': o.rounds = one(); break;
        case '--concurrency': o.concurrency = one(); break;
        case '--clients': o.clients = one(); break;
        case '--profile-seconds': o.profileSeconds = one(); break;
        case '--rates': o.rates = numbers(flag, raw); break;
        case '--rate-seconds': o.rateSeconds = one(); break;
        default: throw new Error(`unknown flag ${flag}\n${USAGE}`);
      }
    }
  }
  if (o.names > 9999) throw new Error(`--names: at most 9999 (four-digit names)\n${USAGE}`);
  return o;
}

/** Rough seconds per part, for the time-left estimate only. */
export function plannedSeconds(o: Options, part: Part): number {
  const sets = 2;
  if (part === 'handshakes') {
    const measuredRuns = sets * o.versions.length * o.rounds * 2 * (o.seconds + 2);
    const coldAndWarm = sets * (2 * (2 + o.names / 500) + 3 * (1 + o.names / 1000));
    const profile = o.profile ? sets * (o.profileSeconds + 2) * (o.perf ? 3 : 1) + 8 : 0;
    return measuredRuns + coldAndWarm + profile;
  }
  return 6 * o.warmSeconds + o.rates.length * 6 * (o.rateSeconds + (o.quick ? 1.5 : 3));
}
