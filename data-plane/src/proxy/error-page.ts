/**
 * The router's own answers: a small HTML page, or JSON (`{"code", "status", "title",
 * "message"}`, the control plane's `code`/`message` shape) when the client's Accept prefers
 * it. Pages carry nothing per request, so every body is built once at start-up.
 */
import { STATUS_CODES } from 'node:http';
import { ROUTER_ERRORS, type RouterErrorCode } from '../errors.js';
import type { ClientResponse } from './client.js';

interface Page {
  status: number;
  reason: string;
  html: Buffer;
  json: Buffer;
  htmlLength: string;
  jsonLength: string;
}

const HTML_TYPE = 'text/html; charset=utf-8';
const JSON_TYPE = 'application/json; charset=utf-8';

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function buildPage(code: RouterErrorCode): Page {
  const def = ROUTER_ERRORS[code];
  const html = Buffer.from(
    `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${def.status} ${escapeHtml(def.title)}</title>` +
      '<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}code{color:#666}</style></head>' +
      `<body><h1>${escapeHtml(def.title)}</h1><p>${escapeHtml(def.detail)}</p><p><code>${def.status} ${code}</code></p></body></html>\n`,
  );
  const json = Buffer.from(`${JSON.stringify({ code, status: def.status, title: def.title, message: def.detail })}\n`);
  return { status: def.status, reason: STATUS_CODES[def.status] ?? def.title, html, json, htmlLength: String(html.length), jsonLength: String(json.length) };
}

const PAGES = Object.fromEntries((Object.keys(ROUTER_ERRORS) as RouterErrorCode[]).map((code) => [code, buildPage(code)])) as Record<RouterErrorCode, Page>;

/** Quality and specificity of the best Accept range matching `type/subtype`; -1 when none does. */
function rank(ranges: string[], type: string, subtype: string): number {
  let best = -1;
  for (const range of ranges) {
    const [media = '', ...params] = range.split(';');
    const [t = '', s = ''] = media.trim().toLowerCase().split('/');
    let specificity: number;
    if (t === type && s === subtype) specificity = 2;
    else if (t === type && s === '*') specificity = 1;
    else if (t === '*' && s === '*') specificity = 0;
    else continue;
    let q = 1;
    for (const param of params) {
      const [k = '', v = ''] = param.split('=');
      if (k.trim().toLowerCase() === 'q') q = Number(v.trim()) || 0;
    }
    if (q === 0) continue;
    // Quality first; among equal qualities the more specific range wins.
    const score = q * 10 + specificity;
    if (score > best) best = score;
  }
  return best;
}

/** JSON when Accept ranks application/json above text/html (ties go to the more specific range, then to HTML). */
export function wantsJson(accept: string | undefined): boolean {
  if (accept === undefined || !accept.includes('json')) return false;
  const ranges = accept.split(',');
  return rank(ranges, 'application', 'json') > rank(ranges, 'text', 'html');
}

/**
 * Answers `res` with the page of `code`. `close`: the request body was not read (or the
 * router is draining), so the connection must not be reused (HTTP/1.1 only: never set for
 * HTTP/2, where Connection is forbidden). `location`: for a redirect
 * (FORCE_HTTPS). Returns the status sent.
 */
export function writeErrorPage(res: ClientResponse, code: RouterErrorCode, requestId: string, json: boolean, close: boolean, location: string | null = null): number {
  const page = PAGES[code];
  const headers = [
    'content-type',
    json ? JSON_TYPE : HTML_TYPE,
    'content-length',
    json ? page.jsonLength : page.htmlLength,
    'cache-control',
    'no-store',
    'x-request-id',
    requestId,
  ];
  if (location !== null) headers.push('location', location);
  if (close) headers.push('connection', 'close');
  // The reason phrase given: node:http would reuse a container's (invalid) one it kept from a
  // writeHead that threw, and throw again.
  res.writeHead(page.status, page.reason, headers);
  res.end(json ? page.json : page.html);
  return page.status;
}

/** Bytes that may not appear in a header value written by hand (CR, LF, other controls, space). */
const UNSAFE_IN_LOCATION = /[\x00-\x20\x7f]/;

/**
 * The same answer as raw bytes, for sockets that left the HTTP server (upgrades, client
 * errors). Always closes. `location` (FORCE_HTTPS) is left out unless it is header-safe;
 * node:http would have refused such a request-target already.
 */
export function rawErrorResponse(code: RouterErrorCode, requestId: string, json: boolean, location: string | null = null): Buffer {
  const page = PAGES[code];
  const body = json ? page.json : page.html;
  const idLine = requestId === '' ? '' : `x-request-id: ${requestId}\r\n`;
  const locationLine = location === null || UNSAFE_IN_LOCATION.test(location) ? '' : `location: ${location}\r\n`;
  const head =
    `HTTP/1.1 ${page.status} ${page.reason}\r\ncontent-type: ${json ? JSON_TYPE : HTML_TYPE}\r\ncontent-length: ${body.length}\r\n` +
    `cache-control: no-store\r\n${idLine}${locationLine}connection: close\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}
