/**
 * Header names the proxy treats specially, recognised without lower-casing (which would
 * allocate a string for most headers of every request): a switch on the length, then a
 * case-folded comparison of at most two candidates.
 */

export const OTHER = 0;
/** Hop-by-hop (RFC 9110 §7.6.1) or proxy-only: never forwarded, either way. */
export const HOP = 1;
export const HOST = 2;
export const CONNECTION = 3;
export const UPGRADE = 4;
export const TRANSFER_ENCODING = 5;
export const CONTENT_LENGTH = 6;
export const EXPECT = 7;
export const COOKIE = 8;
export const VIA = 9;
export const X_FORWARDED_FOR = 10;
/** X-Forwarded-Proto, X-Forwarded-Port, X-Request-Start: set by the router, a client's value is dropped. */
export const ROUTER_SET = 11;
export const X_REQUEST_ID = 12;
/** HTTP/2's `:authority`: the request's Host. */
export const AUTHORITY = 13;
/** The other HTTP/2 pseudo-headers (`:method`, `:path`, `:scheme`, `:protocol`): read from the request, never forwarded as headers. */
export const PSEUDO = 14;

export type HeaderKind = number;

/** `lower` is lower-case and `name.length === lower.length`. OR-ing 0x20 folds ASCII letters; no other token character folds onto a letter, digit or '-'. */
function is(name: string, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) {
    if ((name.charCodeAt(i) | 0x20) !== lower.charCodeAt(i)) return false;
  }
  return true;
}

export function headerKind(name: string): HeaderKind {
  // Only HTTP/2 requests have these (':' is not a token character, so no HTTP/1.1 header starts with it).
  if (name.charCodeAt(0) === 58 /* : */) return name === ':authority' ? AUTHORITY : PSEUDO;
  switch (name.length) {
    case 2:
      return is(name, 'te') ? HOP : OTHER;
    case 3:
      return is(name, 'via') ? VIA : OTHER;
    case 4:
      return is(name, 'host') ? HOST : OTHER;
    case 6:
      if (is(name, 'cookie')) return COOKIE;
      return is(name, 'expect') ? EXPECT : OTHER;
    case 7:
      if (is(name, 'upgrade')) return UPGRADE;
      return is(name, 'trailer') ? HOP : OTHER;
    case 10:
      if (is(name, 'connection')) return CONNECTION;
      return is(name, 'keep-alive') ? HOP : OTHER;
    case 12:
      return is(name, 'x-request-id') ? X_REQUEST_ID : OTHER;
    case 14:
      if (is(name, 'content-length')) return CONTENT_LENGTH;
      // Connection-specific (RFC 9113 §8.2.2): only meaningful with an h2c Upgrade, which is never forwarded.
      return is(name, 'http2-settings') ? HOP : OTHER;
    case 15:
      if (is(name, 'x-forwarded-for')) return X_FORWARDED_FOR;
      return is(name, 'x-request-start') ? ROUTER_SET : OTHER;
    case 16:
      if (is(name, 'x-forwarded-port')) return ROUTER_SET;
      return is(name, 'proxy-connection') ? HOP : OTHER;
    case 17:
      if (is(name, 'transfer-encoding')) return TRANSFER_ENCODING;
      return is(name, 'x-forwarded-proto') ? ROUTER_SET : OTHER;
    case 18:
      return is(name, 'proxy-authenticate') ? HOP : OTHER;
    case 19:
      return is(name, 'proxy-authorization') ? HOP : OTHER;
    default:
      return OTHER;
  }
}

/**
 * The extra header names a Connection header lists (RFC 9110 §7.6.1), lower-cased; null
 * for the usual values (keep-alive, close, upgrade), so the common case allocates nothing.
 */
export function connectionTokens(value: string, acc: string[] | null): string[] | null {
  const len = value.length;
  if ((len === 5 && is(value, 'close')) || (len === 10 && is(value, 'keep-alive')) || (len === 7 && is(value, 'upgrade'))) return acc;
  for (const part of value.split(',')) {
    const token = part.trim().toLowerCase();
    if (token === '' || token === 'close' || token === 'keep-alive' || token === 'upgrade') continue;
    (acc ??= []).push(token);
  }
  return acc;
}

/** Drops from a flat [name, value, ...] list the headers a Connection header named. */
export function dropListed(headers: string[], tokens: string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (!tokens.includes(name.toLowerCase())) kept.push(name, headers[i + 1]!);
  }
  return kept;
}
