/**
 * Requests Node's parser refused before any 'request' event (llhttp: malformed lines,
 * Content-Length with Transfer-Encoding, oversized headers; the headers timeout): answered
 * with the router's code instead of Node's bare 400, and logged like any other answer.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { RouterErrorCode } from '../errors.js';
import { accessLine } from './access-log.js';
import { emitAccessLine, statusOf, type ProxyContext } from './context.js';
import { rawErrorResponse } from './error-page.js';
import { clientAddress } from './headers.js';

function codeFor(err: NodeJS.ErrnoException): RouterErrorCode {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return 'HEADERS_TOO_LARGE';
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return 'REQUEST_TIMEOUT';
    default:
      return 'BAD_REQUEST';
  }
}

export function onClientError(ctx: ProxyContext, err: NodeJS.ErrnoException, duplex: Duplex): void {
  const socket = duplex as Socket;
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE') {
    // The client left between requests: nothing to answer and nothing worth a log line.
    socket.destroy();
    return;
  }
  const code = codeFor(err);
  const status = statusOf(code);
  // A response of an earlier request still being written (Node's own `_httpMessage`) must
  // not get our bytes in its middle: then the connection is only cut.
  const busy = (socket as { _httpMessage?: unknown })._httpMessage;
  if (socket.writable && (busy === undefined || busy === null)) {
    socket.write(rawErrorResponse(code, '', false));
    socket.destroySoon();
  } else {
    socket.destroy();
  }
  ctx.requestMetrics.count('-', status, code);
  emitAccessLine(ctx, accessLine(Date.now(), code, '-', '-', '-', '-', status, 0, 0, 0, 0, '-', '-', clientAddress(socket), 'http/1.1'));
}
