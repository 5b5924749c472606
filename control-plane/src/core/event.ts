/**
 * Platform events as the deploy hooks send them, and their validation. REST and gRPC both
 * hand the decoded body to `validateEvent`, so every rule lives here once; past this point
 * the code trusts the types.
 */
import { isIP } from 'node:net';
import type { AppSettings, Balancer, Container } from '../../../proto/records.js';
import { isValidAppName, isWildcard, normalizeDomain, normalizeHostname } from '../../../proto/names.js';
import { ApiError, invalidField } from '../errors.js';
import { array, boolean, integer, object, string } from './fields.js';
import { CertificateError, validateCertificate, type ValidatedCertificate } from './certificate.js';

export const EVENT_TYPES = ['deploy', 'scale', 'restart', 'stop', 'domains', 'certificate', 'delete'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Types whose event carries the full set of web containers. */
const WITH_CONTAINERS: ReadonlySet<EventType> = new Set(['deploy', 'scale', 'restart']);

export const LIMITS = {
  idLength: 128,
  containers: 1000,
  domains: 100,
  containerIdLength: 128,
  hstsMaxAge: 63_072_000,
} as const;

export type SettingsPatch = Partial<AppSettings>;

export type CertificateChange = { domain: string; remove: true } | { domain: string; remove: false; validated: ValidatedCertificate };

export interface PlatformEvent {
  id: string;
  app: string;
  seq: number;
  type: EventType;
  containers?: Container[];
  domains?: string[];
  certificate?: CertificateChange;
  settings?: SettingsPatch;
}

export interface ValidationContext {
  platformDomain: string;
  now?: Date;
}

const EVENT_FIELDS = ['id', 'app', 'seq', 'type', 'containers', 'domains', 'certificate', 'settings'];
const CONTAINER_FIELDS = ['id', 'host', 'port'];
const SETTINGS_FIELDS = ['force_https', 'sticky_sessions', 'hsts_max_age', 'balancer'];
const BALANCERS: readonly Balancer[] = ['p2c', 'round_robin'];
const ID_RE = /^[\x21-\x7e]+$/;
const CONTAINER_ID_RE = /^[A-Za-z0-9._:-]+$/;

function containerHost(value: unknown, field: string): string {
  const raw = string(value, field, 253);
  if (isIP(raw) !== 0) return raw;
  const name = normalizeHostname(raw);
  if (name === null) throw invalidField(field, 'must be an IPv4 or IPv6 address or a DNS name');
  return name;
}

function containers(value: unknown): Container[] {
  const items = array(value, 'containers', 1, LIMITS.containers);
  const ids = new Set<string>();
  const addresses = new Set<string>();
  return items.map((item, i) => {
    const field = `containers[${i}]`;
    const obj = object(item, field, CONTAINER_FIELDS);
    const id = string(obj['id'], `${field}.id`, LIMITS.containerIdLength);
    if (!CONTAINER_ID_RE.test(id)) throw invalidField(`${field}.id`, 'may hold only A-Z a-z 0-9 . _ : -');
    const host = containerHost(obj['host'], `${field}.host`);
    const port = integer(obj['port'], `${field}.port`, 1, 65535);
    if (ids.has(id)) throw invalidField(`${field}.id`, `duplicate container id "${id}"`);
    const address = `${host}|${port}`;
    if (addresses.has(address)) throw invalidField(field, `duplicate address ${host}:${port}`);
    ids.add(id);
    addresses.add(address);
    return { id, host, port };
  });
}

function domains(value: unknown): string[] {
  const items = array(value, 'domains', 0, LIMITS.domains);
  const seen = new Set<string>();
  for (let i = 0; i < items.length; i++) {
    const field = `domains[${i}]`;
    const raw = string(items[i], field, 255);
    const domain = normalizeDomain(raw);
    if (domain === null) {
      throw invalidField(field, 'must be a DNS name with at least two labels (e.g. www.example.com), or a wildcard like *.example.com');
    }
    if (seen.has(domain)) throw invalidField(field, `duplicate domain ${domain}`);
    seen.add(domain);
  }
  return [...seen];
}

function settings(value: unknown): SettingsPatch {
  const obj = object(value, 'settings', SETTINGS_FIELDS);
  const patch: SettingsPatch = {};
  if (obj['force_https'] !== undefined) patch.force_https = boolean(obj['force_https'], 'settings.force_https');
  if (obj['sticky_sessions'] !== undefined) patch.sticky_sessions = boolean(obj['sticky_sessions'], 'settings.sticky_sessions');
  if (obj['hsts_max_age'] !== undefined) patch.hsts_max_age = integer(obj['hsts_max_age'], 'settings.hsts_max_age', 0, LIMITS.hstsMaxAge);
  if (obj['balancer'] !== undefined) {
    const b = obj['balancer'];
    if (typeof b !== 'string' || !(BALANCERS as readonly string[]).includes(b)) {
      throw invalidField('settings.balancer', `must be one of ${BALANCERS.join(', ')}`);
    }
    patch.balancer = b as Balancer;
  }
  return patch;
}

function certificate(value: unknown, now: Date | undefined): CertificateChange {
  const obj = object(value, 'certificate', ['domain', 'cert', 'key', 'remove']);
  const rawDomain = string(obj['domain'], 'certificate.domain', 255);
  const domain = normalizeDomain(rawDomain);
  if (domain === null) throw invalidField('certificate.domain', 'must be one of the app\'s custom domains');
  if (obj['remove'] !== undefined) {
    if (obj['remove'] !== true) throw invalidField('certificate.remove', 'must be true when present');
    if (obj['cert'] !== undefined || obj['key'] !== undefined) {
      throw invalidField('certificate', 'send either remove: true or cert and key, not both');
    }
    return { domain, remove: true };
  }
  // The key is never echoed: errors about it name the field only.
  const cert = string(obj['cert'], 'certificate.cert', 256 * 1024);
  const key = string(obj['key'], 'certificate.key', 64 * 1024);
  try {
    return { domain, remove: false, validated: validateCertificate({ domain, cert, key }, now) };
  } catch (err) {
    if (err instanceof CertificateError) throw new ApiError('INVALID_CERTIFICATE', err.reason, 'certificate');
    throw err;
  }
}

/** Throws ApiError (INVALID_FIELD, UNKNOWN_FIELD, INVALID_CERTIFICATE) naming the first bad field. */
export function validateEvent(body: unknown, ctx: ValidationContext): PlatformEvent {
  const obj = object(body, 'body', EVENT_FIELDS);
  const id = string(obj['id'], 'id', LIMITS.idLength);
  if (!ID_RE.test(id)) throw invalidField('id', 'must be printable ASCII without spaces');
  const app = string(obj['app'], 'app', 63);
  if (!isValidAppName(app)) throw invalidField('app', 'must match ^[a-z0-9][a-z0-9-]{0,62}$');
  const seq = integer(obj['seq'], 'seq', 1, Number.MAX_SAFE_INTEGER);
  const type = obj['type'];
  if (typeof type !== 'string' || !(EVENT_TYPES as readonly string[]).includes(type)) {
    throw invalidField('type', `must be one of ${EVENT_TYPES.join(', ')}`);
  }
  const event: PlatformEvent = { id, app, seq, type: type as EventType };

  const need = (field: 'containers' | 'domains' | 'certificate', wanted: boolean): void => {
    const present = obj[field] !== undefined;
    if (wanted && !present) throw invalidField(field, `is required for a ${type} event`);
    if (!wanted && present) throw invalidField(field, `is not allowed on a ${type} event`);
  };
  need('containers', WITH_CONTAINERS.has(event.type));
  need('domains', event.type === 'domains');
  need('certificate', event.type === 'certificate');

  if (obj['containers'] !== undefined) event.containers = containers(obj['containers']);
  if (obj['domains'] !== undefined) {
    event.domains = domains(obj['domains']);
    const suffix = `.${ctx.platformDomain}`;
    event.domains.forEach((d, i) => {
      const bare = isWildcard(d) ? d.slice(2) : d;
      if (bare === ctx.platformDomain || bare.endsWith(suffix)) {
        throw new ApiError('DOMAIN_TAKEN', `domains[${i}]: ${d} is under the platform domain ${ctx.platformDomain}, reserved for default app hostnames`, `domains[${i}]`);
      }
    });
  }
  if (obj['certificate'] !== undefined) event.certificate = certificate(obj['certificate'], ctx.now);
  if (obj['settings'] !== undefined) event.settings = settings(obj['settings']);
  return event;
}
