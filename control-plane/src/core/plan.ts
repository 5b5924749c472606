/**
 * Turns (the app as stored, an event) into the exact writes of one atomic apply. Pure: no
 * I/O, so every rule about what an event does to the records is here and testable alone.
 *
 * Host records are rewritten only where their content changes, and the invalidation names
 * exactly the keys written or deleted, so routers drop nothing they did not have to.
 */
import { encryptPrivateKey, type KeyRing } from '../../../proto/key-envelope.js';
import { defaultHostname } from '../../../proto/names.js';
import {
  DEFAULT_SETTINGS,
  type AppRecord,
  type AppSettings,
  type CertRecord,
  type CertSummary,
  type Container,
  type HostRecord,
  type HostStatus,
  type Open,
} from '../../../proto/records.js';
import type { OpenInvalidation } from '../../../proto/invalidation.js';
import { ApiError } from '../errors.js';
import type { PlatformEvent } from './event.js';

export interface ApplyPlan {
  app: Open<AppRecord>;
  /** The one host record every hostname of the app holds; null when the app is deleted. */
  host: Open<HostRecord> | null;
  hostWrites: string[];
  hostDeletes: string[];
  certWrites: Array<Open<CertRecord>>;
  certDeletes: string[];
  index: 'add' | 'rem';
  invalidation: OpenInvalidation;
}

export interface PlanContext {
  platformDomain: string;
  now: Date;
  /** Seals private keys; without it a certificate can be removed but not set. */
  keyRing: KeyRing | undefined;
}

function sameContainers(a: readonly Container[], b: readonly Container[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.id !== y.id || x.host !== y.host || x.port !== y.port) return false;
  }
  return true;
}

function sameSettings(a: AppSettings, b: AppSettings): boolean {
  return a.force_https === b.force_https && a.sticky_sessions === b.sticky_sessions && a.hsts_max_age === b.hsts_max_age && a.balancer === b.balancer;
}

function hostnamesOf(app: string, domains: readonly string[], platformDomain: string): string[] {
  return [defaultHostname(app, platformDomain), ...domains];
}

export function planEvent(old: AppRecord | null, event: PlatformEvent, ctx: PlanContext): ApplyPlan {
  const live = old !== null && old.status !== 'deleted' ? old : null;
  const nowIso = ctx.now.toISOString();
  const oldHostnames = live ? hostnamesOf(live.app, live.domains, ctx.platformDomain) : [];
  const oldCerts = live ? live.certificates.map((c) => c.domain) : [];

  if (event.type === 'delete') {
    const app: Open<AppRecord> = {
      v: 1,
      app: event.app,
      seq: event.seq,
      status: 'deleted',
      containers: [],
      domains: [],
      settings: { ...DEFAULT_SETTINGS },
      certificates: [],
      created_at: live?.created_at ?? nowIso,
      updated_at: nowIso,
    };
    return {
      app,
      host: null,
      hostWrites: [],
      hostDeletes: oldHostnames,
      certWrites: [],
      certDeletes: oldCerts,
      index: 'rem',
      invalidation: { v: 1, app: event.app, hosts: oldHostnames, certs: oldCerts },
    };
  }

  let status: HostStatus = live ? (live.status as HostStatus) : 'stopped';
  let containers: Container[] = live ? live.containers : [];
  if (event.containers !== undefined) {
    status = 'running';
    containers = event.containers;
  } else if (event.type === 'stop') {
    status = 'stopped';
    containers = [];
  }
  const domains = event.domains ?? (live ? live.domains : []);
  const settings: AppSettings = { ...DEFAULT_SETTINGS, ...(live ? live.settings : {}), ...(event.settings ?? {}) };

  let certificates: CertSummary[] = live ? live.certificates.filter((c) => domains.includes(c.domain)) : [];
  const certWrites: Array<Open<CertRecord>> = [];
  const certDeletes = oldCerts.filter((d) => !domains.includes(d));
  if (event.certificate !== undefined) {
    const change = event.certificate;
    if (!domains.includes(change.domain)) {
      throw new ApiError(
        'DOMAIN_NOT_ATTACHED',
        `certificate.domain: ${change.domain} is not a custom domain of ${event.app} (its domains: ${domains.join(', ') || 'none'})`,
        'certificate.domain',
      );
    }
    certificates = certificates.filter((c) => c.domain !== change.domain);
    if (change.remove) {
      if (oldCerts.includes(change.domain)) certDeletes.push(change.domain);
    } else {
      if (ctx.keyRing === undefined) {
        throw new ApiError('ENCRYPTION_KEY_MISSING', 'KEY_ENCRYPTION_KEY is not set on this control plane, so private keys cannot be stored encrypted; nothing was written (see docs/OPERATIONS.md)');
      }
      const c = change.validated;
      certWrites.push({
        v: 1,
        app: event.app,
        domain: change.domain,
        chain: c.chainPem,
        // The domain is the envelope's AAD: the record opens only under this domain's key.
        key: encryptPrivateKey(c.keyPem, change.domain, ctx.keyRing),
        key_type: c.keyType,
        not_before: c.notBefore,
        not_after: c.notAfter,
        fingerprint256: c.fingerprint256,
      });
      certificates.push({ domain: change.domain, not_after: c.notAfter, fingerprint256: c.fingerprint256 });
    }
  }

  const hostnames = hostnamesOf(event.app, domains, ctx.platformDomain);
  const contentChanged =
    live === null || live.status !== status || !sameContainers(live.containers, containers) || !sameSettings(live.settings, settings);
  const hostWrites = contentChanged ? hostnames : hostnames.filter((h) => !oldHostnames.includes(h));
  const hostDeletes = oldHostnames.filter((h) => !hostnames.includes(h));

  const app: Open<AppRecord> = {
    v: 1,
    app: event.app,
    seq: event.seq,
    status,
    containers,
    domains,
    settings,
    certificates,
    created_at: live?.created_at ?? nowIso,
    updated_at: nowIso,
  };
  const host: Open<HostRecord> = { v: 1, app: event.app, status, containers, settings };
  const certsChanged = [...certWrites.map((c) => c.domain), ...certDeletes];
  return {
    app,
    host,
    hostWrites,
    hostDeletes,
    certWrites,
    certDeletes,
    index: 'add',
    invalidation: { v: 1, app: event.app, hosts: [...hostWrites, ...hostDeletes], certs: certsChanged },
  };
}

