/**
 * Where force_https sends a plain-HTTP request: the same host and path over https, on the
 * port clients reach the HTTPS listener at (ROUTER_HTTPS_PORT, left out when 443).
 */

/** `host` is the normalized hostname (no port); `target` the request-target as received. */
export function httpsLocation(host: string, target: string, httpsPort: number): string {
  const port = httpsPort === 443 ? '' : `:${httpsPort}`;
  return `https://${host}${port}${target.charCodeAt(0) === 47 /* / */ ? target : pathOf(target)}`;
}

/** Absolute-form (`http://host/path`, as sent to proxies) or `*`: keep only path and query. */
function pathOf(target: string): string {
  try {
    const url = new URL(target);
    return `${url.pathname}${url.search}`;
  } catch {
    return '/';
  }
}
