/**
 * What the API shows of the records: the same shapes over REST and gRPC. Private keys are
 * not part of any view; certificate records never leave the store through this module.
 */
import { defaultHostname } from '../../../proto/names.js';
import type { AppRecord, AppSettings, Container, HostStatus } from '../../../proto/records.js';
import type { ResolvedRoute } from '../store/route-store.js';

export interface CertificateView {
  domain: string;
  not_after: string;
  fingerprint256: string;
  expires_in_days: number;
}

export interface AppView {
  app: string;
  status: HostStatus;
  seq: number;
  version: number;
  containers: Container[];
  hostnames: string[];
  domains: string[];
  settings: AppSettings;
  certificates: CertificateView[];
  created_at: string;
  updated_at: string;
}

export interface RouteView {
  hostname: string;
  matched: string;
  app: string;
  status: HostStatus;
  containers: Container[];
  settings: AppSettings;
  certificate: { domain: string } | null;
  version: number;
}

const DAY_MS = 86_400_000;

export function appView(record: AppRecord, platformDomain: string, now: number = Date.now()): AppView {
  return {
    app: record.app,
    status: record.status as HostStatus,
    seq: record.seq,
    version: record.version,
    containers: record.containers,
    hostnames: [defaultHostname(record.app, platformDomain), ...record.domains],
    domains: record.domains,
    settings: record.settings,
    certificates: record.certificates.map((c) => ({
      domain: c.domain,
      not_after: c.not_after,
      fingerprint256: c.fingerprint256,
      expires_in_days: Math.floor((Date.parse(c.not_after) - now) / DAY_MS),
    })),
    created_at: record.created_at,
    updated_at: record.updated_at,
  };
}

export function routeView(route: ResolvedRoute): RouteView {
  const r = route.record;
  return {
    hostname: route.hostname,
    matched: route.matched,
    app: r.app,
    status: r.status,
    containers: r.containers,
    settings: r.settings,
    certificate: route.certificate === null ? null : { domain: route.certificate },
    version: r.version,
  };
}
