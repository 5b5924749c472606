/**
 * `GET /.well-known/acme-challenge/<token>` on the plain-HTTP listener, for any Host: the
 * CA validating a custom domain reaches whichever router DNS points at, before the app
 * (or even the domain) is routed there, and force_https must not redirect it.
 */
import { ACME_CHALLENGE_PATH, isValidAcmeToken } from '../../../proto/acme.js';
import { hostFromHeader } from '../../../proto/names.js';
import type { HttpExchange } from '../proxy/http-exchange.js';
import type { AcmeResponder } from './acme-responder.js';

const TEXT_PLAIN = 'text/plain; charset=utf-8';

export function answerAcmeChallenge(ex: HttpExchange, acme: AcmeResponder, url: string): void {
  const head = ex.head;
  const host = head.hostCount === 1 ? hostFromHeader(head.host) : null;
  // Logged as sent when invalid, bounded: it is the client's text.
  ex.host = host ?? (head.host === undefined ? '-' : head.host.slice(0, 256));
  const query = url.indexOf('?', ACME_CHALLENGE_PATH.length);
  const token = url.slice(ACME_CHALLENGE_PATH.length, query < 0 ? url.length : query);
  // The charset check keeps anything but a plausible token away from Redis.
  if (!isValidAcmeToken(token)) return ex.fail('ACME_UNKNOWN_TOKEN');
  let found;
  try {
    found = acme.lookup(token);
  } catch {
    return ex.fail('STORE_UNAVAILABLE');
  }
  if (found instanceof Promise) {
    found.then(
      (value) => guarded(ex, value, false),
      () => guarded(ex, null, true),
    );
  } else {
    respond(ex, found, false);
  }
}

function respond(ex: HttpExchange, keyAuthorization: string | null, storeFailed: boolean): void {
  if (ex.clientGone()) return ex.abandon();
  if (storeFailed) return ex.fail('STORE_UNAVAILABLE');
  if (keyAuthorization === null) return ex.fail('ACME_UNKNOWN_TOKEN');
  ex.answer(200, TEXT_PLAIN, keyAuthorization);
}

/** Off the request's stack: a throw here would be an unhandled rejection, which ends the process. */
function guarded(ex: HttpExchange, keyAuthorization: string | null, storeFailed: boolean): void {
  try {
    respond(ex, keyAuthorization, storeFailed);
  } catch (err) {
    ex.ctx.log.error({ err }, 'ACME answer failed');
    if (!ex.done) ex.res.destroy();
  }
}
