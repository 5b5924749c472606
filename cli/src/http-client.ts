/**
 * The CLI's requests to the control plane and the log-shipper: one place that turns
 * answers into either a value or a CliError carrying the exit code scripts branch on.
 */
import { signBody, SIGNATURE_HEADER } from '../../proto/hook-signature.js';

export const EXIT = {
  OK: 0,
  /** The API refused the request (4xx other than 404): the message says what to fix. */
  REFUSED: 1,
  USAGE: 2,
  NOT_FOUND: 3,
  /** Could not reach the service, or it answered 5xx: retrying later may work. */
  UNAVAILABLE: 4,
} as const;

export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number,
    readonly code = 'CLI_ERROR',
  ) {
    super(message);
  }
}

export interface Endpoint {
  url: string;
  token: string | undefined;
  /** Control plane only: sign bodies with HOOK_SECRET instead of sending the token. */
  hookSecret?: string | undefined;
}

export async function send(endpoint: Endpoint, method: string, path: string, body?: Buffer): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (endpoint.hookSecret !== undefined && body !== undefined) headers[SIGNATURE_HEADER] = signBody(endpoint.hookSecret, body);
  else if (endpoint.token !== undefined) headers['authorization'] = `Bearer ${endpoint.token}`;
  let res: Response;
  try {
    // Appended, not resolved: a base URL with a path (behind a proxy) keeps it.
    res = await fetch(`${endpoint.url.replace(/\/+$/, '')}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new CliError(`cannot reach ${endpoint.url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`, EXIT.UNAVAILABLE, 'UNREACHABLE');
  }
  if (res.ok) return res;
  const text = await res.text();
  let code = `HTTP_${res.status}`;
  let message = text.slice(0, 500);
  try {
    const parsed = JSON.parse(text) as { error?: { code?: string; message?: string }; code?: string; message?: string };
    code = parsed.error?.code ?? parsed.code ?? code;
    message = parsed.error?.message ?? parsed.message ?? message;
  } catch {
    // not JSON: the raw text is the message
  }
  const exitCode = res.status === 404 ? EXIT.NOT_FOUND : res.status >= 500 ? EXIT.UNAVAILABLE : EXIT.REFUSED;
  throw new CliError(`${code}: ${message}`, exitCode, code);
}

export async function getJson<T>(endpoint: Endpoint, path: string): Promise<T> {
  return (await (await send(endpoint, 'GET', path)).json()) as T;
}
