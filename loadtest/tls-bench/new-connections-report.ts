/**
 * The report's section on HTTPS with a new connection per request (h2load): what was run,
 * what each figure measures (the request's latency starts after the handshake), the table,
 * and whether any handshake was resumed.
 */
import type { Measured } from '../router-bench/http-parts.js';
import { cpu, f1, f2, int, kinds, other } from '../router-bench/report.js';
import type { NewConnectionResult } from './new-connections.js';

const stats = (x: { min: number; mean: number; max: number; sd: number }): string => `${f2(x.min)} / ${f2(x.mean)} / ${f1(x.max)} (${f2(x.sd)})`;

function table(rows: Array<Measured<NewConnectionResult>>): string {
  return [
    '| conn/s | target | sent | 2xx | errors | achieved conn/s | request p50 / p99 / max ms | connect + handshake ms, min / mean / max (sd) | connect → first byte ms, mean / max | h2load cores (µs/conn) | server CPU µs/request (sys) | router handshakes, resumed | other load, cores (steal) |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.rate} | ${r.target} | ${r.sent} | ${r.ok} | ${r.errors}${r.errors > 0 ? ` (${kinds(r.errorKinds)})` : ''} | ${int(r.achievedRate)}${r.behind ? ` ⚠ behind ${int(r.behindMs)} ms` : ''} | ${f2(r.latency.p50)} / ${f2(r.latency.p99)} / ${f1(r.latency.max)} | ${stats(r.connect)} | ${f2(r.firstByte.mean)} / ${f1(r.firstByte.max)} | ${f2(r.generator.cores)} (${int(r.generator.usPerConnection)}) | ${cpu(r.cpu, false)} | ${r.handshakes === undefined ? '-' : `${r.handshakes.ok}${r.handshakes.error > 0 ? ` (+${r.handshakes.error} failed)` : ''}, **${r.handshakes.resumed}**`} | ${other(r.machine, r.attempts)} |`),
  ].join('\n');
}

export function newConnectionSection(rows: Array<Measured<NewConnectionResult>>, s: string[]): void {
  const first = rows[0];
  if (first === undefined) return;
  s.push('## HTTPS, a new connection per request (h2load)', '');
  s.push(`The generator is h2load, a C client (OpenSSL, one thread), run once per phase as a child process: it opens a fixed number of connections every period (10 ms when the rate divides into it, else the shortest multiple of 10 ms that does: 250/s is 5 every 20 ms), one HTTP/1.1 request on each, then closes it; every connection a full TLS handshake, SNI and Host the first ECDSA name, TLS at h2load's defaults. Each phase runs after an unrecorded lead-in at its rate (same length as the keep-alive phases'). A request or a connection taking more than 10 s is a timeout. For example: \`${first.command}\`.`, '');
  s.push('What each figure measures:', '');
  s.push('- **errors**: every connection that did not end in a 2xx — non-2xx status, timeout, connection error (refused, reset, handshake failed);');
  s.push('- **achieved conn/s**: connections h2load actually opened per second, from the spread of the requests\' start times against the schedule\'s (h2load does not catch up a late tick: a generator that falls behind opens fewer per second and takes longer); ⚠ when under 95 % of the rate, with how far behind the last connection went out;');
  s.push('- **request**: from sending the request — *after* the TCP connect and the TLS handshake — to the end of the response, 2xx only (h2load\'s per-request log). It excludes the handshake;');
  s.push('- **connect + handshake**: from connect() to the end of the TLS handshake, per connection (h2load\'s summary: min, mean, max, sd; no percentiles);');
  s.push('- **connect → first byte**: from connect() to the response\'s first byte, handshake included (h2load\'s summary). With one request per connection, connect + handshake mean plus request mean is the mean time from connect() to the end of the response. Not given: the time from each connection\'s *scheduled* start to its response — h2load\'s log has no connection id and starts at the request, so it cannot be computed per request; the achieved rate is how lateness of the generator shows;');
  s.push('- **h2load cores**: h2load\'s own CPU (user + system, from this process\'s reaped-children time) over its run\'s wall time, and per connection;');
  s.push('- **server CPU**: the proxy\'s processes (router: primary + workers; nginx: master + workers), /proc, over the measured run only, per 2xx request;');
  s.push('- **router handshakes, resumed**: the router\'s `router_tls_handshakes_total{outcome}` and `router_tls_resumed_total` over the measured run: every handshake must be a full one (0 resumed).', '');
  s.push(table(rows), '');
  const routerRows = rows.filter((r) => r.handshakes !== undefined);
  if (routerRows.length > 0) {
    const hs = routerRows.reduce((n, r) => n + r.handshakes!.ok, 0);
    const resumed = routerRows.reduce((n, r) => n + r.handshakes!.resumed, 0);
    const sent = routerRows.reduce((n, r) => n + r.sent, 0);
    s.push(`Full handshakes: the router counted ${hs} successful handshakes for ${sent} connections over its measured runs, **${resumed} resumed**${resumed === 0 ? '' : ' — h2load offered sessions: these rows are not full handshakes'}. The same h2load, with no session between its connections, faced nginx.`, '');
  }
  const behind = rows.filter((r) => r.behind);
  if (behind.length > 0) s.push(`⚠ h2load fell behind its schedule in ${behind.length} phase(s) (${behind.map((r) => `${r.target} at ${r.rate}/s: ${int(r.achievedRate)}/s`).join('; ')}): those rows measure fewer connections per second than their label.`, '');
  const seen = new Map<string, string>();
  for (const r of rows) if (!seen.has(r.target)) seen.set(r.target, `${r.tls.protocol ?? '?'}, ${r.tls.cipher ?? '?'}, key exchange ${r.tls.serverTempKey ?? '?'}, ALPN ${r.tls.alpn ?? '?'}`);
  s.push('Negotiated (as h2load reports its first connection):', '');
  for (const [k, v] of seen) s.push(`- ${k}: ${v}`);
  s.push('');
}
