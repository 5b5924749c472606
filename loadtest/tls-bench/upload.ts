/**
 * Puts the benchmark's names on the platform the way deploy hooks do: one app per SNI name,
 * running on the shared containers, with the name as its custom domain and the name's
 * certificate — three events per app (`deploy`, `domains`, `certificate`) through the
 * control plane's REST API, which validates each certificate and seals its key.
 */
import type { Container, Platform } from '../router-bench/platform.js';
import type { CertSet } from './certificates.js';

export interface UploadResult {
  apps: number;
  events: number;
  seconds: number;
  failures: number;
  firstFailure?: string;
}

export async function uploadApps(platform: Platform, sets: CertSet[], containers: Container[], concurrency: number, onProgress: (text: string) => void): Promise<UploadResult> {
  const work = sets.flatMap((set) => set.names.map((name, i) => ({ app: set.apps[i]!, name, chain: set.chains[i]!, key: set.keyPem })));
  let next = 0;
  let done = 0;
  let failures = 0;
  let firstFailure: string | undefined;
  const started = performance.now();
  // Bounded: a control plane that stops answering fails the run instead of hanging it.
  const deadline = started + 10 * 60_000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < work.length && performance.now() < deadline) {
        const w = work[next++]!;
        try {
          // An app's events go in order: the control plane refuses a certificate for a domain not attached yet.
          await platform.deploy(w.app, containers);
          await platform.send(w.app, 'domains', { domains: [w.name] });
          await platform.send(w.app, 'certificate', { certificate: { domain: w.name, cert: w.chain, key: w.key } });
        } catch (err) {
          failures++;
          firstFailure ??= (err as Error).message.slice(0, 300);
        }
        if (++done % 500 === 0) onProgress(`${done}/${work.length} apps with their certificate`);
      }
    }),
  );
  const missing = work.length - done;
  return { apps: work.length, events: 3 * done, seconds: (performance.now() - started) / 1000, failures: failures + missing, ...(firstFailure === undefined ? {} : { firstFailure }) };
}
