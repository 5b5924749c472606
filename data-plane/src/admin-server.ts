/**
 * The admin listener: /metrics, /healthz, /readyz. Bound to 127.0.0.1 by default and never
 * on the public port, so the internet cannot read the routing metrics or probe readiness.
 * The same server runs in a single-process router and in the cluster primary; only where
 * the metrics and readiness come from differs.
 */
import http from 'node:http';

export interface AdminSource {
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Resolves with details; `ready` false answers 503. */
  readiness(): Promise<{ ready: boolean; detail: Record<string, unknown> }>;
}

export interface AdminServer {
  port: number;
  close(): Promise<void>;
}

export async function startAdminServer(source: AdminSource, host: string, port: number): Promise<AdminServer> {
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    const reply = (status: number, contentType: string, body: string): void => {
      res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'application/json', '{"code":"METHOD_NOT_ALLOWED"}');
    if (url === '/healthz') return reply(200, 'application/json', '{"status":"ok"}');
    if (url === '/readyz') {
      source.readiness().then(
        (r) => reply(r.ready ? 200 : 503, 'application/json', JSON.stringify({ status: r.ready ? 'ready' : 'not ready', ...r.detail })),
        (err: Error) => reply(503, 'application/json', JSON.stringify({ status: 'not ready', error: err.message })),
      );
      return;
    }
    if (url === '/metrics') {
      source.metrics().then(
        (m) => reply(200, m.contentType, m.body),
        (err: Error) => reply(500, 'text/plain', `metrics unavailable: ${err.message}\n`),
      );
      return;
    }
    reply(404, 'application/json', '{"code":"NOT_FOUND"}');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address !== null ? address.port : port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
