/**
 * A handshake load process, forked by handshakes.ts (one or more, so that the client is not
 * one event loop's worth of CPU). It does full TLS handshakes only: a new TCP connection,
 * the handshake with the name's SNI, the chain verified against the test CAs, then a clean
 * close (close_notify and FIN, waiting for the server's) — no request, and never a session
 * to resume, so every handshake pays the server's full signature and key exchange.
 *
 * Closed loop: `concurrency` handshakes in flight, each slot starting the next as soon as
 * its previous one closed, cycling over the names; or each name exactly once (the cold pass).
 */
import tls from 'node:tls';
import type { HandshakeJob, HandshakeReport, HandshakeSample } from './handshake-protocol.js';

const HANDSHAKE_TIMEOUT_MS = 10_000;

class Failure extends Error {
  constructor(readonly kind: string) {
    super(kind);
  }
}

function sampleOf(socket: tls.TLSSocket): HandshakeSample {
  const peer = socket.getPeerCertificate();
  const cipher = socket.getCipher();
  const ephemeral = socket.getEphemeralKeyInfo();
  const key = peer.asn1Curve !== undefined ? `EC ${peer.nistCurve ?? peer.asn1Curve}` : `RSA ${peer.bits ?? '?'}`;
  return {
    protocol: socket.getProtocol() ?? '?',
    cipher: cipher.standardName ?? cipher.name,
    group: ephemeral !== null && 'name' in ephemeral && ephemeral.name !== undefined ? ephemeral.name : (ephemeral as { type?: string } | null)?.type ?? '?',
    certificateKey: key,
    alpn: socket.alpnProtocol === false ? 'none' : (socket.alpnProtocol ?? 'none'),
  };
}

/** One full handshake to `name`; resolves with its duration (connect → handshake done) once the connection is closed. */
function handshake(job: HandshakeJob, context: tls.SecureContext, name: string, wantSample: boolean): Promise<{ ms: number; reused: boolean; sample?: HandshakeSample }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let ms = NaN;
    let reused = false;
    let sample: HandshakeSample | undefined;
    let settled = false;
    const socket = tls.connect({
      host: job.host,
      port: job.port,
      servername: name,
      secureContext: context,
      ALPNProtocols: ['http/1.1'],
    }, () => {
      ms = performance.now() - started;
      reused = socket.isSessionReused();
      if (wantSample) sample = sampleOf(socket);
      // end, not destroy: with TLS 1.3 the server completes after our Finished; a reset would
      // make its handshake fail, and waiting for its close keeps the loop truly closed.
      socket.end();
    });
    socket.setTimeout(HANDSHAKE_TIMEOUT_MS, () => socket.destroy(new Failure('timeout')));
    // The server's NewSessionTicket and close_notify must be read for 'close' to come.
    socket.resume();
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      reject(err instanceof Failure ? err : new Failure(err.code ?? err.message));
    });
    socket.once('close', () => {
      if (settled) return;
      settled = true;
      if (Number.isNaN(ms)) reject(new Failure('closed before the handshake'));
      else resolve(sample === undefined ? { ms, reused } : { ms, reused, sample });
    });
  });
}

async function run(job: HandshakeJob): Promise<HandshakeReport> {
  const latencies: number[] = [];
  const errorKinds: Record<string, number> = {};
  let errors = 0;
  let reused = 0;
  let sample: HandshakeSample | undefined;
  // Only the run's first handshake reads what was negotiated (getPeerCertificate allocates).
  let sampleWanted = true;
  // One context for the run, as a real client keeps one: tls.connect with `ca` would build
  // (and parse the CAs into) a new one per connection, several times a handshake's own cost.
  const context = tls.createSecureContext({ ca: job.ca, minVersion: job.version, maxVersion: job.version });
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const deadline = started + job.seconds * 1000;
  let next = 0;
  const total = job.names.length;
  const more = (): boolean => (job.mode === 'each' ? next < total : performance.now() < deadline);
  await Promise.all(
    Array.from({ length: job.concurrency }, async () => {
      while (more()) {
        const name = job.names[(job.offset + next++) % total]!;
        try {
          const wantSample = sampleWanted;
          sampleWanted = false;
          const r = await handshake(job, context, name, wantSample);
          latencies.push(r.ms);
          if (r.reused) reused++;
          sample ??= r.sample;
        } catch (err) {
          errors++;
          const kind = err instanceof Failure ? err.kind : String(err);
          errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
        }
      }
    }),
  );
  const elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpu0);
  return { kind: 'report', id: job.id, handshakes: latencies.length, errors, errorKinds, reused, latencies, elapsedMs, cpuUserMs: cpu.user / 1000, cpuSysMs: cpu.system / 1000, ...(sample === undefined ? {} : { sample }) };
}

process.on('message', (msg: HandshakeJob | { kind: 'exit' }) => {
  if (msg.kind === 'exit') process.exit(0);
  run(msg).then(
    (report) => process.send?.(report),
    (err: unknown) => process.send?.({ kind: 'failed', id: msg.id, message: String(err) }),
  );
});
// The benchmark is gone (crashed, killed): nothing else would ever stop this process.
process.on('disconnect', () => process.exit(0));
process.send?.({ kind: 'ready' });
