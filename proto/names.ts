/**
 * Names every service agrees on: what an app name is, what a hostname is, and how a
 * request's Host header or a TLS SNI name becomes the keys a router looks up.
 *
 * The control plane validates with these functions before it writes; routers normalize
 * with the same functions before they read. One definition, so a name the control plane
 * accepted is always a name a router can find.
 */

/** App names double as path segments (log files) and DNS labels, so they stay that narrow. */
export const APP_NAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

export function isValidAppName(name: string): boolean {
  return APP_NAME_RE.test(name);
}

const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const MAX_HOSTNAME = 253;

/**
 * Lower-cases and strips one trailing dot; returns null when the result is not a DNS name
 * made of LDH labels (IDNs must arrive as A-labels, `xn--...`).
 */
export function normalizeHostname(input: string): string | null {
  let name = input.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.length === 0 || name.length > MAX_HOSTNAME) return null;
  const labels = name.split('.');
  for (const label of labels) {
    if (!LABEL_RE.test(label)) return null;
  }
  return name;
}

/**
 * A custom domain: a hostname with at least two labels, or a wildcard `*.rest` whose rest has
 * at least two labels (a wildcard on a public suffix like `*.com` would swallow other tenants).
 */
export function normalizeDomain(input: string): string | null {
  const lower = input.toLowerCase();
  if (lower.startsWith('*.')) {
    const rest = normalizeHostname(lower.slice(2));
    if (rest === null || !rest.includes('.')) return null;
    return `*.${rest}`;
  }
  const name = normalizeHostname(lower);
  if (name === null || !name.includes('.')) return null;
  return name;
}

export function isWildcard(domain: string): boolean {
  return domain.startsWith('*.');
}

/** The hostname every app answers on whatever its custom domains: `<app>.<platform domain>`. */
export function defaultHostname(app: string, platformDomain: string): string {
  return `${app}.${platformDomain}`;
}

/**
 * The one-label wildcard that may cover `hostname`, or null when there is none to try
 * (`a.example.org` → `*.example.org`; `example.org` → null, since `*.org` can never be stored).
 */
export function wildcardFor(hostname: string): string | null {
  const dot = hostname.indexOf('.');
  if (dot <= 0) return null;
  const rest = hostname.slice(dot + 1);
  if (!rest.includes('.')) return null;
  return `*.${rest}`;
}

/**
 * Host header → hostname: strips the port (also from `[v6]:port`), lower-cases, strips the
 * trailing dot. Returns null for anything a router must answer 400 to.
 */
export function hostFromHeader(header: string | undefined): string | null {
  if (header === undefined || header.length === 0 || header.length > MAX_HOSTNAME + 7) return null;
  let host = header;
  if (host.charCodeAt(0) === 91 /* [ */) {
    // IP literals have no app behind them; a router answers them like an unknown host.
    const end = host.indexOf(']');
    if (end < 0) return null;
    return host.slice(0, end + 1).toLowerCase();
  }
  const colon = host.indexOf(':');
  if (colon >= 0) {
    const port = host.slice(colon + 1);
    if (!/^[0-9]{1,5}$/.test(port)) return null;
    host = host.slice(0, colon);
  }
  return normalizeHostname(host);
}
