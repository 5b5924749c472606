/**
 * The floor of a Node proxy on this machine, for the throughput part: what node:http plus an
 * undici Pool cost per request with nothing else — no route lookup, header rewriting, access
 * log or metrics — in as many cluster workers as the router (round-robin accept, like it).
 * The distance router → floor is the router's own work; floor → nginx is Node's.
 *
 *   FLOOR_PORT=… FLOOR_UPSTREAMS=port,port FLOOR_WORKERS=2 [FLOOR_SCHED=none] node dist/loadtest/router-bench/node-floor.js
 */
import cluster from 'node:cluster';
import http from 'node:http';
import { Pool } from 'undici';

const HOST = '127.0.0.1';

function serve(port: number, upstreams: number[]): void {
  const pools = upstreams.map((p) => new Pool(`http://${HOST}:${p}`, { connections: 128 }));
  let next = 0;
  http
    .createServer((req, res) => {
      const pool = pools[next++ % pools.length]!;
      pool.request({ path: req.url ?? '/', method: 'GET', headers: { host: req.headers.host ?? '' } }).then(
        async (up) => {
          const body = Buffer.from(await up.body.arrayBuffer());
          res.writeHead(up.statusCode, { 'content-type': 'text/plain', 'content-length': body.length });
          res.end(body);
        },
        () => {
          res.statusCode = 502;
          res.end();
        },
      );
    })
    .listen(port, HOST, () => process.send?.('listening'));
}

const port = Number(process.env['FLOOR_PORT']);
const upstreams = (process.env['FLOOR_UPSTREAMS'] ?? '').split(',').map(Number);
const workers = Number(process.env['FLOOR_WORKERS'] ?? 2);
if (!Number.isInteger(port) || upstreams.some((p) => !Number.isInteger(p) || p <= 0)) {
  process.stderr.write('node-floor: set FLOOR_PORT and FLOOR_UPSTREAMS\n');
  process.exit(78);
}
if (cluster.isPrimary && workers > 1) {
  // FLOOR_SCHED=none: the kernel spreads connections (workers accept themselves) — to price the primary's round-robin handoff.
  cluster.schedulingPolicy = process.env['FLOOR_SCHED'] === 'none' ? cluster.SCHED_NONE : cluster.SCHED_RR;
  for (let i = 0; i < workers; i++) cluster.fork();
  // The benchmark stops the primary; the workers must not outlive it.
  process.on('SIGTERM', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    process.exit(0);
  });
} else {
  serve(port, upstreams);
}
