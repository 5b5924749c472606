/**
 * The 'upgrade' path: Host → route lookup → a Tunnel to a container chosen like any request.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { hostFromHeader } from '../../../proto/names.js';
import type { HostRecord } from '../../../proto/records.js';
import type { ProxyContext } from './context.js';
import { scanRequest } from './headers.js';
import { Tunnel } from './websocket-tunnel.js';

export function proxyUpgrade(ctx: ProxyContext, req: IncomingMessage, socket: Duplex, early: Buffer): void {
  // The HTTP server hands over a net.Socket (a TLSSocket on the TLS listener): both are net.Socket.
  const tunnel = new Tunnel(ctx, req, socket as Socket, early);
  try {
    scanRequest(req, true, ctx.forwarding, tunnel.at, tunnel.head);
    const head = tunnel.head;
    const host = head.hostCount === 1 ? hostFromHeader(head.host) : null;
    if (host === null) {
      // Logged as sent, bounded: it is the client's text.
      if (head.host !== undefined) tunnel.host = head.host.slice(0, 256);
      return tunnel.fail('BAD_HOST');
    }
    tunnel.host = host;
    let found;
    try {
      found = ctx.routes.resolve(host);
    } catch (err) {
      return tunnel.lookupFailed(err);
    }
    if (found instanceof Promise) {
      found.then(
        (record) => guarded(tunnel, record, null),
        (err: unknown) => guarded(tunnel, null, err),
      );
    } else {
      tunnel.route(found);
    }
  } catch (err) {
    ctx.log.error({ err }, 'upgrade handling failed');
    socket.destroy();
  }
}

function guarded(tunnel: Tunnel, record: HostRecord | null, err: unknown): void {
  try {
    if (err === null) tunnel.route(record);
    else tunnel.lookupFailed(err);
  } catch (failure) {
    tunnel.ctx.log.error({ err: failure }, 'upgrade handling failed');
    tunnel.client.destroy();
  }
}
