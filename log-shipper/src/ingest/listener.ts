/**
 * One TCP port for routers and HTTP clients: the first bytes of a connection decide. A
 * router starts with LOG_PROTOCOL_MAGIC ("RLOG/1\n"; no HTTP method starts with 'R'); any
 * other byte hands the socket, with what was read put back (unshift), to the node:http
 * server as if it had accepted it. A connection that says nothing within the deadline is
 * closed.
 */
import net from 'node:net';
import type http from 'node:http';
import { LOG_PROTOCOL_MAGIC } from '../../../proto/log-batch.js';

export interface ListenerHandlers {
  /** A router: `rest` is what followed the magic in the bytes read so far; `deadlineMs` what is left of the HELLO deadline. */
  router(socket: net.Socket, rest: Buffer, deadlineMs: number): void;
  http: http.Server;
}

export interface Listener {
  server: net.Server;
  port: number;
}

export async function startListener(host: string, port: number, deadlineMs: number, handlers: ListenerHandlers): Promise<Listener> {
  const server = net.createServer({ noDelay: true }, (socket) => sniff(socket, deadlineMs, handlers));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  const address = server.address();
  return { server, port: typeof address === 'object' && address !== null ? address.port : port };
}

function sniff(socket: net.Socket, deadlineMs: number, handlers: ListenerHandlers): void {
  const accepted = Date.now();
  let seen: Buffer | null = null;
  const timer = setTimeout(() => socket.destroy(), deadlineMs);
  const onError = (): void => {
    socket.destroy();
  };
  const done = (): void => {
    clearTimeout(timer);
    socket.removeListener('data', onData);
    socket.removeListener('error', onError);
  };
  const onData = (chunk: Buffer): void => {
    seen = seen === null ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, LOG_PROTOCOL_MAGIC.length);
    if (seen.compare(LOG_PROTOCOL_MAGIC, 0, n, 0, n) !== 0) {
      done();
      socket.pause();
      socket.unshift(seen);
      handlers.http.emit('connection', socket);
      socket.resume();
      return;
    }
    if (seen.length < LOG_PROTOCOL_MAGIC.length) return;
    done();
    handlers.router(socket, seen.subarray(LOG_PROTOCOL_MAGIC.length), deadlineMs - (Date.now() - accepted));
  };
  socket.on('error', onError);
  socket.on('data', onData);
}
