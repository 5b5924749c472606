/**
 * The benchmark's certificates: for each key type (ECDSA P-256, RSA 2048) a test CA of that
 * type and one certificate per SNI name, `<prefix>-0001.tls-bench.test`…, signed by it.
 *
 * One key pair per set, shared by all its certificates: what a handshake costs the server
 * depends on the key's type and size, not on which key it is, and 1000 RSA key generations
 * would take minutes. Each name still has its own certificate (its own SAN, serial and
 * signature), so the router builds and caches one SecureContext per name and nginx loads one
 * certificate per `server` block, as with real customers' certificates.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createTestCa, generateKeys } from '../../test-support/certs.js';

export type KeyType = 'ec' | 'rsa';

export const KEY_LABEL: Record<KeyType, string> = { ec: 'ECDSA P-256', rsa: 'RSA 2048' };
export const DOMAIN = 'tls-bench.test';

export interface CertSet {
  keyType: KeyType;
  label: string;
  caPem: string;
  /** The set's one private key (PKCS#8 PEM). */
  keyPem: string;
  /** `<app>.tls-bench.test`, in order. */
  names: string[];
  /** One app per name, named after it (`ec-0001` for `ec-0001.tls-bench.test`). */
  apps: string[];
  /** Per name: its certificate then the CA's, as uploaded to the control plane and given to nginx. */
  chains: string[];
}

/** Issues `count` certificates for each key type. */
export async function makeCertSets(count: number, onProgress: (text: string) => void): Promise<CertSet[]> {
  const sets: CertSet[] = [];
  for (const keyType of ['ec', 'rsa'] as const) {
    const prefix = keyType === 'ec' ? 'ec' : 'rsa';
    // A CA of the same type, as public CAs issue (an RSA intermediate for RSA leaves): the client's chain check then costs what it costs in the field.
    const ca = await createTestCa({ keyType, commonName: `tls-bench ${KEY_LABEL[keyType]} CA` });
    const keys = await generateKeys(keyType);
    const apps = Array.from({ length: count }, (_, i) => `${prefix}-${String(i + 1).padStart(4, '0')}`);
    const names = apps.map((app) => `${app}.${DOMAIN}`);
    const chains: string[] = new Array<string>(count);
    let keyPem = '';
    const parallel = 32;
    for (let from = 0; from < count; from += parallel) {
      const batch = names.slice(from, from + parallel);
      const issued = await Promise.all(batch.map((name) => ca.issue({ sans: [name], keyType, keys })));
      issued.forEach((c, j) => {
        chains[from + j] = c.chainPem;
        keyPem = c.keyPem;
      });
    }
    onProgress(`${count} ${KEY_LABEL[keyType]} certificates issued`);
    sets.push({ keyType, label: KEY_LABEL[keyType], caPem: ca.certPem, keyPem, names, apps, chains });
  }
  return sets;
}

export interface CertFiles {
  /** Per SNI name: the chain file and the key file nginx reads. */
  byName: Map<string, { chainFile: string; keyFile: string }>;
}

/** Writes every chain and each set's key under `dir` (nginx's `ssl_certificate`/`ssl_certificate_key`). */
export async function writeCertFiles(dir: string, sets: CertSet[]): Promise<CertFiles> {
  await mkdir(dir, { recursive: true });
  const byName = new Map<string, { chainFile: string; keyFile: string }>();
  for (const set of sets) {
    const keyFile = path.join(dir, `${set.keyType}.key`);
    // nginx's master reads certificates and keys before its workers drop privileges.
    await writeFile(keyFile, set.keyPem, { mode: 0o600 });
    for (let i = 0; i < set.names.length; i++) {
      const chainFile = path.join(dir, `${set.names[i]}.pem`);
      await writeFile(chainFile, set.chains[i]!);
      byName.set(set.names[i]!, { chainFile, keyFile });
    }
  }
  return { byName };
}
