/**
 * The two nginx instances of the benchmark, each with its configuration, pid file, logs and
 * temp paths in its own temporary directory (nothing under /etc or /var is read or written):
 *
 * - the backends: several loopback ports answering `200 "<id>\n"`, the fastest "containers"
 *   this machine can have, so what is measured above them is the proxy in front;
 * - the comparison proxy: nginx as Scalingo's routers are built, an `upstream` with
 *   keep-alive connections to the same backends, 2 workers like the router.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { canConnect, HOST, readText, run, spawnLogged, waitUntil, type Child } from './processes.js';

const NGINX_CANDIDATES = ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx'];

export async function findNginx(): Promise<{ binary: string; version: string }> {
  for (const binary of NGINX_CANDIDATES) {
    const { code, stderr } = await run(binary, ['-v']);
    if (code === 0) return { binary, version: stderr.trim().replace(/^nginx version:\s*/, '') };
  }
  throw new Error('nginx is not installed: `sudo apt-get install -y nginx` (only the binary is used; the system service can stay stopped)');
}

export interface Nginx {
  dir: string;
  child: Child;
  /** Rewrites nginx.conf (the next reload reads it). */
  writeConfig(conf: string): Promise<void>;
  /** What `nginx -s reload` sends: the master re-reads its configuration and replaces its workers. */
  reload(): void;
  /** SIGHUP notices in the error log: reloads nginx actually received. */
  reloadsSeen(): Promise<number>;
  stop(): Promise<void>;
}

export function common(dir: string, workers: number, errorLevel: string): string {
  // Temp paths inside the directory: nginx creates them at start even when nothing is buffered.
  return `worker_processes ${workers};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log ${errorLevel};
events { worker_connections 8192; }
`;
}

export function httpCommon(dir: string): string {
  return `  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  default_type text/plain;
  # A client connection is never closed after N requests: the clients here reuse theirs, as a
  # browser or a load balancer in front of a router does.
  keepalive_requests 1000000;
  keepalive_timeout 300s;
`;
}

export function backendConfig(dir: string, backends: Array<{ id: string; port: number }>): string {
  const servers = backends.map((b) => `  server { listen ${HOST}:${b.port}; location / { return 200 "${b.id}\\n"; } }`).join('\n');
  // One worker: the backends are a fixed, cheap cost shared by every target measured.
  return `${common(dir, 1, 'warn')}http {
  access_log off;
${httpCommon(dir)}${servers}
}
`;
}

/** The `upstream bench` block: keep-alive connections to the containers, like the router's pools. */
export function upstreamBlock(upstreamPorts: number[]): string {
  const servers = upstreamPorts.map((p) => `    server ${HOST}:${p};`).join('\n');
  return `  upstream bench {
${servers}
    keepalive 64;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
  }
`;
}

/** What the router does to a request on its way: HTTP/1.1 upstream on a kept-alive connection, X-Forwarded-* and a request id. */
export const PROXY_DIRECTIVES = `proxy_pass http://bench;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Request-Id $request_id;`;

export function proxyConfig(dir: string, port: number, upstreamPorts: number[]): string {
  // Like the router: keep-alive upstream connections, an access line per request written to a
  // file through a buffer, X-Forwarded-* and a request id added. notice level: reloads are logged.
  return `${common(dir, 2, 'notice')}http {
${httpCommon(dir)}  access_log ${dir}/access.log combined buffer=64k flush=1s;
${upstreamBlock(upstreamPorts)}  server {
    listen ${HOST}:${port} reuseport;
    location / {
      ${PROXY_DIRECTIVES}
    }
  }
}
`;
}

/** `parent`: the run's temporary directory; this instance gets `<parent>/nginx-<name>`. */
export async function startNginx(name: string, binary: string, parent: string, conf: (dir: string) => string, ports: number[]): Promise<Nginx> {
  const dir = path.join(parent, `nginx-${name}`);
  await mkdir(dir, { recursive: true });
  // Workers run as `nobody` when started by root and must reach their directory.
  await chmod(parent, 0o755);
  await chmod(dir, 0o755);
  const confFile = path.join(dir, 'nginx.conf');
  await writeFile(confFile, conf(dir));
  // -e: otherwise nginx opens its compiled-in /var/log/nginx/error.log before reading the config.
  const child = spawnLogged(`nginx ${name}`, binary, ['-p', dir, '-c', confFile, '-e', path.join(dir, 'error.log'), '-g', 'daemon off;'], process.env, path.join(dir, 'stderr.log'));
  try {
    await waitUntil(`nginx ${name} listening`, async () => (await Promise.all(ports.map(canConnect))).every(Boolean), 10_000, child);
  } catch (err) {
    const log = await readText(path.join(dir, 'error.log'));
    await child.stop();
    throw new Error(`${(err as Error).message}\n${log.slice(-2000)}`);
  }
  return {
    dir,
    child,
    writeConfig: (text) => writeFile(confFile, text),
    reload: () => {
      child.proc.kill('SIGHUP');
    },
    reloadsSeen: async () => (await readText(path.join(dir, 'error.log'))).split('(SIGHUP) received').length - 1,
    // SIGQUIT: graceful, so nginx removes its pid file and flushes its access-log buffer.
    stop: () => child.stop('SIGQUIT', 5_000),
  };
}
