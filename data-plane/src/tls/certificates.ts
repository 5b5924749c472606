/**
 * The HTTPS listener's certificate selection: the SNI callback and the TLS options of the
 * server. Per handshake:
 *
 *   no SNI                       → the server's own (default) certificate; never called here
 *   not a hostname               → default
 *   <app>.<PLATFORM_DOMAIN>      → the platform wildcard (or default), no Redis
 *   cached / known unknown       → answered synchronously
 *   cold                         → one MGET cert:<name> cert:<*.rest>, shared by every
 *                                  handshake waiting for the name; the others go on meanwhile
 *
 * Whatever goes wrong (Redis down, an unusable record) the handshake gets the default
 * certificate rather than an abort: the client sees a name mismatch it can report, and the
 * request, if it goes on, is still routed by Host.
 */
import { DEFAULT_CIPHERS, type SecureContext, type TlsOptions } from 'node:tls';
import type { Logger } from 'pino';
import { normalizeHostname } from '../../../proto/names.js';
import type { RouterMetrics } from '../metrics.js';
import { CertCache } from './cert-cache.js';
import { UnusableCertError, type CertSource } from './cert-store.js';
import type { DefaultCerts } from './default-certs.js';

export interface CertificatesOptions {
  source: CertSource;
  defaults: DefaultCerts;
  platformDomain: string;
  cacheMax: number;
  negativeTtlMs: number;
  metrics: RouterMetrics;
  log: Logger;
}

/** The same on every router of every fleet: tickets are told apart by their key, not by this. */
export const SESSION_ID_CONTEXT = 'platform-router';

/**
 * Node's default list with each ECDHE-ECDSA suite moved ahead of the ECDHE-RSA ones, used in
 * the server's order. In TLS 1.2 the suite picks the certificate, and the connection holds
 * both the default (RSA) certificate and the SNI one: with Node's order (RSA first) a client
 * that accepts both would get the default certificate instead of a domain's ECDSA one.
 * TLS 1.3 suites do not depend on the key type and keep their order.
 */
export function ecdsaFirst(ciphers: string): string {
  const list = ciphers.split(':');
  const ecdsa = list.filter((c) => c.startsWith('ECDHE-ECDSA-'));
  const rest = list.filter((c) => !c.startsWith('ECDHE-ECDSA-'));
  const at = rest.findIndex((c) => c.startsWith('ECDHE-RSA-'));
  if (at < 0) return ciphers;
  return [...rest.slice(0, at), ...ecdsa, ...rest.slice(at)].join(':');
}

type SniCallback = (err: Error | null, ctx?: SecureContext) => void;

export class Certificates {
  readonly cache: CertCache;
  private readonly defaults: DefaultCerts;
  private readonly platformSuffix: string;
  private readonly log: Logger;

  constructor(options: CertificatesOptions) {
    this.defaults = options.defaults;
    this.platformSuffix = `.${options.platformDomain}`;
    this.log = options.log;
    this.cache = new CertCache({ source: options.source, max: options.cacheMax, negativeTtlMs: options.negativeTtlMs, metrics: options.metrics, log: options.log });
  }

  /** For node:tls: minimum TLS 1.2, the default certificate for clients without SNI. ALPN is the listener's (http-server.ts). */
  tlsOptions(): TlsOptions {
    return {
      cert: this.defaults.fallbackPem.cert,
      key: this.defaults.fallbackPem.key,
      minVersion: 'TLSv1.2',
      // OpenSSL resumes a session only under the session id context it was issued in, and
      // Node's default is a hash of process.argv: routers started from another path or with
      // other arguments would refuse each other's tickets (ticket-keys.ts shares the key).
      sessionIdContext: SESSION_ID_CONTEXT,
      // ECDSA suites first, in our order: see ecdsaFirst.
      ciphers: ecdsaFirst(DEFAULT_CIPHERS),
      honorCipherOrder: true,
      SNICallback: (servername: string, cb: SniCallback) => this.select(servername, cb),
    };
  }

  select(servername: string, cb: SniCallback): void {
    const name = normalizeHostname(servername);
    if (name === null) return cb(null, this.defaults.fallback);
    if (this.isPlatformName(name)) return cb(null, this.defaults.platform);
    const cached = this.cache.get(name);
    if (cached !== undefined) return cb(null, cached === null ? this.defaults.fallback : cached.context);
    this.cache.load(name).then(
      (cert) => cb(null, cert === null ? this.defaults.fallback : cert.context),
      (err: unknown) => {
        if (err instanceof UnusableCertError) {
          this.log.error({ sni: name, err: err.message }, 'stored certificate unusable: serving the default certificate');
        } else {
          // Redis unreachable: not remembered, the next handshake asks again.
          this.log.warn({ sni: name, err: (err as Error).message }, 'certificate lookup failed: serving the default certificate');
        }
        cb(null, this.defaults.fallback);
      },
    );
  }

  invalidate(domains: readonly string[]): void {
    this.cache.invalidate(domains);
  }

  flush(): void {
    this.cache.flush();
  }

  /** `<app>.<PLATFORM_DOMAIN>` exactly: one label before the platform domain. */
  private isPlatformName(name: string): boolean {
    if (!name.endsWith(this.platformSuffix)) return false;
    const label = name.length - this.platformSuffix.length;
    return label > 0 && name.lastIndexOf('.', label - 1) < 0;
  }
}
