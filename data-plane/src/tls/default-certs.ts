/**
 * The certificates the router serves without asking Redis: the default one (unknown SNI,
 * no SNI, IP addresses) and the platform wildcard for `<app>.<PLATFORM_DOMAIN>`. Read once
 * at start; a file that cannot be read or parsed stops the router (exit 78 via ConfigError)
 * rather than serve something unexpected.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';
import { ConfigError } from '../../../proto/config/env.js';
import { generateSelfSigned, type PemPair } from './self-signed.js';

export const DEFAULT_COMMON_NAME = 'platform-router default';

export interface DefaultCerts {
  /** PEMs of the default certificate: the TLS server's own options (no SNI never calls SNICallback). */
  fallbackPem: PemPair;
  fallback: SecureContext;
  /** For `<app>.<PLATFORM_DOMAIN>`; the fallback when ROUTER_PLATFORM_CERT is unset. */
  platform: SecureContext;
}

function readText(variable: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`${variable}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`]);
  }
}

/**
 * Each failure names the variable at fault and the file, never the content: OpenSSL's own
 * messages are replaced, since a parse error could quote part of a key.
 */
function readPair(certVar: string, certFile: string, keyVar: string, keyFile: string): PemPair {
  const pair = { cert: readText(certVar, certFile), key: readText(keyVar, keyFile) };
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pair.cert);
  } catch {
    throw new ConfigError([`${certVar}: ${certFile} is not a PEM certificate`]);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pair.key);
  } catch {
    throw new ConfigError([`${keyVar}: ${keyFile} is not an unencrypted PEM private key`]);
  }
  if (!cert.checkPrivateKey(key)) throw new ConfigError([`${certVar} / ${keyVar}: the key in ${keyFile} does not match the certificate in ${certFile}`]);
  try {
    createSecureContext(pair);
  } catch {
    throw new ConfigError([`${certVar} / ${keyVar}: OpenSSL refuses ${certFile} with ${keyFile}`]);
  }
  return pair;
}

/**
 * Node's SNI switch adds the chosen certificate next to the server's own instead of replacing
 * it (see self-signed.ts): an EC default certificate would be preferred over every RSA
 * certificate from Redis by clients that accept both. Said once at start.
 */
export function shadowsRsa(pair: PemPair): boolean {
  return new X509Certificate(pair.cert).publicKey.asymmetricKeyType === 'ec';
}

export interface CertFiles {
  defaultCertFile: string | undefined;
  defaultKeyFile: string | undefined;
  platformCertFile: string | undefined;
  platformKeyFile: string | undefined;
}

/**
 * The configured pairs, read and checked; throws ConfigError naming the variable. main.ts
 * calls it before forking workers too, so bad files stop the router with exit 78 instead of
 * making the cluster primary replace crashing workers forever.
 */
export function readCertFiles(config: CertFiles): { defaultPair: PemPair | undefined; platformPair: PemPair | undefined } {
  return {
    defaultPair:
      config.defaultCertFile !== undefined && config.defaultKeyFile !== undefined
        ? readPair('ROUTER_DEFAULT_CERT', config.defaultCertFile, 'ROUTER_DEFAULT_KEY', config.defaultKeyFile)
        : undefined,
    platformPair:
      config.platformCertFile !== undefined && config.platformKeyFile !== undefined
        ? readPair('ROUTER_PLATFORM_CERT', config.platformCertFile, 'ROUTER_PLATFORM_KEY', config.platformKeyFile)
        : undefined,
  };
}

export function loadDefaultCerts(config: CertFiles): DefaultCerts {
  const { defaultPair, platformPair } = readCertFiles(config);
  const fallbackPem = defaultPair ?? generateSelfSigned(DEFAULT_COMMON_NAME);
  const fallback = createSecureContext(fallbackPem);
  const platform = platformPair === undefined ? fallback : createSecureContext(platformPair);
  return { fallbackPem, fallback, platform };
}
