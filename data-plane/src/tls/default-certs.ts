/**
 * The certificates the router serves without asking Redis: the default one (unknown SNI,
 * no SNI, IP addresses) and the platform wildcard for `<app>.<PLATFORM_DOMAIN>`. Read once
 * at start; a file that cannot be read or parsed stops the router (exit 78 via ConfigError)
 * rather than serve something unexpected.
 */
import { X509Certificate } from 'node:crypto';
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

function readPair(certVar: string, certFile: string, keyVar: string, keyFile: string): PemPair {
  try {
    const pair = { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
    createSecureContext(pair);
    return pair;
  } catch (err) {
    // The message of a failed parse is OpenSSL's, never the key's bytes; a read error names the path.
    const reason = (err as NodeJS.ErrnoException).code ?? 'not a PEM certificate and matching key';
    throw new ConfigError([`${certVar} / ${keyVar}: cannot use ${certFile} and ${keyFile} (${reason})`]);
  }
}

/**
 * Node's SNI switch adds the chosen certificate next to the server's own instead of replacing
 * it (see self-signed.ts): an EC default certificate would be preferred over every RSA
 * certificate from Redis by clients that accept both. Said once at start.
 */
export function shadowsRsa(pair: PemPair): boolean {
  return new X509Certificate(pair.cert).publicKey.asymmetricKeyType === 'ec';
}

export function loadDefaultCerts(config: {
  defaultCertFile: string | undefined;
  defaultKeyFile: string | undefined;
  platformCertFile: string | undefined;
  platformKeyFile: string | undefined;
}): DefaultCerts {
  const fallbackPem =
    config.defaultCertFile !== undefined && config.defaultKeyFile !== undefined
      ? readPair('ROUTER_DEFAULT_CERT', config.defaultCertFile, 'ROUTER_DEFAULT_KEY', config.defaultKeyFile)
      : generateSelfSigned(DEFAULT_COMMON_NAME);
  const fallback = createSecureContext(fallbackPem);
  const platform =
    config.platformCertFile !== undefined && config.platformKeyFile !== undefined
      ? createSecureContext(readPair('ROUTER_PLATFORM_CERT', config.platformCertFile, 'ROUTER_PLATFORM_KEY', config.platformKeyFile))
      : fallback;
  return { fallbackPem, fallback, platform };
}
