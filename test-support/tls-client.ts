/**
 * A real TLS client for handshake tests: which certificate was served, whether the session
 * was resumed, and the session to offer next time (node:tls `session` reuse).
 */
import tls from 'node:tls';

export interface Handshake {
  reused: boolean;
  protocol: string;
  fingerprint: string;
  cn: string;
  /** The first ticket the server sent (TLS 1.3 sends it after the handshake); undefined unless asked for. */
  session: Buffer | undefined;
}

export interface HandshakeOptions {
  servername?: string;
  /** A session from an earlier handshake, offered for resumption. */
  session?: Buffer;
  maxVersion?: tls.SecureVersion;
  /** Wait for the server's session ticket before closing (needed to resume later). */
  wantSession?: boolean;
  ca?: string[];
  /** Rejects when the handshake has not completed by then (a bound, not an assertion on time). Default 10 s. */
  timeoutMs?: number;
}

export function tlsHandshake(port: number, options: HandshakeOptions = {}): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    let session: Buffer | undefined;
    let connected = false;
    let done = false;
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ...(options.servername === undefined ? {} : { servername: options.servername }),
      ...(options.session === undefined ? {} : { session: options.session }),
      ...(options.maxVersion === undefined ? {} : { maxVersion: options.maxVersion }),
      ...(options.ca === undefined ? { rejectUnauthorized: false } : { ca: options.ca }),
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`TLS handshake with 127.0.0.1:${port} did not complete within ${options.timeoutMs ?? 10_000} ms`));
    }, options.timeoutMs ?? 10_000);
    const finish = (): void => {
      if (done || !connected || (options.wantSession === true && session === undefined)) return;
      done = true;
      clearTimeout(timer);
      const peer = socket.getPeerCertificate();
      const result: Handshake = {
        reused: socket.isSessionReused(),
        protocol: socket.getProtocol() ?? '',
        fingerprint: peer.fingerprint256,
        cn: String(peer.subject?.CN ?? ''),
        session,
      };
      // end, not destroy: with TLS 1.3 the server completes after our Finished; a reset
      // would count as a failed handshake on its side.
      socket.end();
      socket.once('close', () => resolve(result));
    };
    socket.once('secureConnect', () => {
      connected = true;
      finish();
    });
    socket.on('session', (ticket: Buffer) => {
      if (session !== undefined) return;
      session = ticket;
      finish();
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.resume();
  });
}
