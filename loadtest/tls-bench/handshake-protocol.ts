/**
 * The messages between the benchmark and its handshake processes (handshake-client.ts), over
 * the IPC channel of child_process.fork.
 */
import type { SecureVersion } from 'node:tls';

export interface HandshakeJob {
  kind: 'run';
  id: number;
  host: string;
  port: number;
  /** Cycled over from `offset` (`duration`), or each handshaked once (`each`). */
  names: string[];
  offset: number;
  mode: 'duration' | 'each';
  seconds: number;
  concurrency: number;
  /** Both ends of the allowed range: exactly this version. */
  version: SecureVersion;
  /** The test CAs, PEM: the chain is verified as any client would. */
  ca: string[];
}

/** What was negotiated, from a process's first handshake of a run. */
export interface HandshakeSample {
  protocol: string;
  cipher: string;
  group: string;
  certificateKey: string;
  alpn: string;
}

export interface HandshakeReport {
  kind: 'report';
  id: number;
  handshakes: number;
  errors: number;
  errorKinds: Record<string, number>;
  /** Handshakes the server resumed: must stay 0 (no session is ever offered). */
  reused: number;
  /** Per successful handshake, ms from connect() to the handshake done. */
  latencies: number[];
  elapsedMs: number;
  cpuUserMs: number;
  cpuSysMs: number;
  sample?: HandshakeSample;
}

export type ClientMessage = HandshakeReport | { kind: 'failed'; id: number; message: string } | { kind: 'ready' };
