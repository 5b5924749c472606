/**
 * nginx terminating TLS for the same names and certificates as the router, in front of the
 * same containers: one `server` block per SNI name with its `ssl_certificate`, all proxying
 * to the `upstream` of router-bench's nginx (keep-alive connections, HTTP/1.1, X-Forwarded-*,
 * a request id, an access log through a 64 KB buffer), plus a plain-HTTP listener.
 *
 * TLS left at nginx's defaults but for the protocols, which match the router's (1.2 and 1.3):
 * session tickets on, no session cache — the benchmark's clients never resume anyway.
 */
import { HOST } from '../router-bench/processes.js';
import { common, httpCommon, PROXY_DIRECTIVES, upstreamBlock } from '../router-bench/nginx.js';
import type { CertFiles } from './certificates.js';

export interface TlsProxyPorts {
  http: number;
  https: number;
}

export function tlsProxyConfig(dir: string, ports: TlsProxyPorts, upstreamPorts: number[], certs: CertFiles, workers: number): string {
  const servers: string[] = [];
  let first = true;
  for (const [name, files] of certs.byName) {
    // reuseport once per address: the kernel spreads new connections over the workers.
    servers.push(`  server {
    listen ${HOST}:${ports.https} ssl${first ? ' reuseport default_server' : ''};
    server_name ${name};
    ssl_certificate ${files.chainFile};
    ssl_certificate_key ${files.keyFile};
    location / { proxy_pass http://bench; }
  }`);
    first = false;
  }
  // proxy_* directives at http level are inherited by every location that sets none.
  const inherited = PROXY_DIRECTIVES.split('\n').map((l) => l.trim()).filter((l) => !l.startsWith('proxy_pass')).map((l) => `  ${l}`).join('\n');
  return `${common(dir, workers, 'warn')}http {
${httpCommon(dir)}  access_log ${dir}/access.log combined buffer=64k flush=1s;
  # ${certs.byName.size} server names: the default hash sizes are too small for them.
  server_names_hash_max_size ${Math.max(1024, 4 * certs.byName.size)};
  server_names_hash_bucket_size 128;
  ssl_protocols TLSv1.2 TLSv1.3;
${upstreamBlock(upstreamPorts)}${inherited}
  server {
    listen ${HOST}:${ports.http} reuseport;
    location / { proxy_pass http://bench; }
  }
${servers.join('\n')}
}
`;
}
