/**
 * How a deploy hook signs a request to the control plane, shared by the verifier
 * (control-plane/src/auth.ts) and the signers (the ops CLI, the start script, tests):
 * `X-Platform-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(HOOK_SECRET, "<t>.<raw body>")>`
 * over the exact bytes sent (for gRPC, the serialized request message).
 */
import { createHmac } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-platform-signature';
export const SIGNATURE_WINDOW_SECONDS = 300;

export function signBody(secret: string, body: Buffer | string, timestamp: number = Math.floor(Date.now() / 1000)): string {
  const mac = createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
  return `t=${timestamp},v1=${mac}`;
}
