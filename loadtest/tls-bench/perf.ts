/**
 * The native side of "where the CPU goes", when `perf` can sample here: V8's profiler sees
 * OpenSSL's work inside a handshake only as "(program)", perf sees the functions — in the
 * router (OpenSSL is linked into the node binary, which keeps its symbols) and in nginx
 * (libssl/libcrypto), so the same handshake's cost can be set side by side.
 *
 * `perf record -e cpu-clock -F <hz>` on the server's processes during one closed-loop window:
 * a sample is about 1/hz s of their CPU, so samples × (1/hz) ÷ handshakes is CPU per
 * handshake, area by area. Self time only (no call graphs): cheap to take and to read.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { run, sleep, spawnLogged } from '../router-bench/processes.js';
import type { KeyType } from './certificates.js';
import type { HandshakeRun } from './handshake-fleet.js';

export const PERF_HZ = 999;

export interface PerfRow {
  area: string;
  dso: string;
  symbol: string;
  samples: number;
  share: number;
  usPerHandshake: number;
}

export interface PerfSummary {
  target: string;
  keyType: KeyType;
  version: string;
  run: HandshakeRun;
  samples: number;
  /** CPU per handshake of the sampled processes, µs (samples ÷ hz ÷ handshakes). */
  usPerHandshake: number;
  areas: Array<{ area: string; samples: number; share: number; usPerHandshake: number }>;
  top: PerfRow[];
}

/** Whether `perf record` works here (installed, and allowed by kernel.perf_event_paranoid for this user). */
export async function perfAvailable(): Promise<boolean> {
  const probe = await run('perf', ['stat', '-e', 'cpu-clock', '--', 'true']);
  return probe.code === 0;
}

/** The software layer a sampled function belongs to; OpenSSL is split out wherever it lives. */
export function areaOf(dso: string, symbol: string): string {
  if (dso.includes('kernel') || dso === '[k]') return 'kernel (TCP/IP, syscalls, scheduling)';
  if (/^libcrypto|^libssl/.test(dso)) return 'OpenSSL';
  if (dso.startsWith('libc.') || dso.startsWith('libc-')) return 'libc (malloc, memcpy…)';
  if (dso === 'nginx') return 'nginx itself';
  if (dso.startsWith('[JIT]') || dso.startsWith('perf-') || dso === '[unknown]' || dso.startsWith('//anon')) return 'JIT-compiled JavaScript';
  if (dso === 'node') {
    if (symbol.startsWith('Builtins_') || symbol.includes('v8::') || symbol.startsWith('Builtin:')) return 'V8 (builtins, runtime, GC, compiler)';
    if (symbol.includes('node::')) return 'Node C++ (TLSWrap, streams, bindings)';
    if (/^uv_|^uv__/.test(symbol)) return 'libuv';
    if (symbol.startsWith('llhttp')) return 'llhttp';
    // The C code linked into node is almost all OpenSSL (zlib, c-ares, nghttp2 do nothing here).
    if (!symbol.includes('::')) return 'OpenSSL';
    return 'other C++ in node';
  }
  return dso;
}

export function parsePerfReport(text: string): Array<{ dso: string; symbol: string; samples: number }> {
  const rows: Array<{ dso: string; symbol: string; samples: number }> = [];
  for (const line of text.split('\n')) {
    const cols = line.split('\t').map((c) => c.trim());
    if (cols.length < 4 || !cols[0]!.endsWith('%')) continue;
    const samples = Number(cols[1]);
    if (!Number.isFinite(samples)) continue;
    // "[.] name" (user) or "[k] name" (kernel)
    const symbol = cols.slice(3).join('\t').replace(/^\[[.k]\]\s*/, '');
    rows.push({ dso: cols[2]!, symbol, samples });
  }
  return rows;
}

/**
 * Samples `pids` while `work` runs (a closed-loop window); the report is read back and the
 * file deleted. Null when perf failed: the report then says so and the run goes on.
 */
export async function perfWindow(label: { target: string; keyType: KeyType; version: string }, pids: number[], dir: string, work: () => Promise<HandshakeRun>): Promise<PerfSummary | null> {
  const data = path.join(dir, `perf-${label.target}-${label.keyType}-${label.version}.data`);
  const perf = spawnLogged(`perf (${label.target})`, 'perf', ['record', '-e', 'cpu-clock', '-F', String(PERF_HZ), '-p', pids.join(','), '-o', data], process.env, path.join(dir, 'perf.log'));
  // perf attaches within a few ms; the samples before the window are idle ones, which perf does not take.
  await sleep(300);
  let result: HandshakeRun;
  try {
    result = await work();
  } finally {
    // SIGINT: perf writes its file and exits.
    await perf.stop('SIGINT', 20_000);
  }
  const report = await run('perf', ['report', '-i', data, '-q', '--stdio', '--no-children', '-n', '--sort', 'dso,sym', '-t', '\t'], 120_000);
  await rm(data, { force: true });
  const rows = parsePerfReport(report.stdout);
  const samples = rows.reduce((s, r) => s + r.samples, 0);
  if (samples === 0) return null;
  const us = (n: number): number => ((n * 1e6) / PERF_HZ) / result.ok;
  const byArea = new Map<string, number>();
  for (const r of rows) {
    const a = areaOf(r.dso, r.symbol);
    byArea.set(a, (byArea.get(a) ?? 0) + r.samples);
  }
  return {
    ...label,
    run: result,
    samples,
    usPerHandshake: us(samples),
    areas: [...byArea.entries()].sort((a, b) => b[1] - a[1]).map(([area, n]) => ({ area, samples: n, share: n / samples, usPerHandshake: us(n) })),
    top: rows.sort((a, b) => b.samples - a.samples).slice(0, 15).map((r) => ({ area: areaOf(r.dso, r.symbol), dso: r.dso, symbol: r.symbol, samples: r.samples, share: r.samples / samples, usPerHandshake: us(r.samples) })),
  };
}
