/**
 * X-Request-Id: the client's (or an outer proxy's) id is kept so one id follows a request
 * across hops; anything else is replaced, so a client cannot inject log-breaking text.
 */
import { randomUUID } from 'node:crypto';

const CLIENT_ID = /^[A-Za-z0-9+/=-]{20,200}$/;

/** `client`: the value the client sent, if any. A fresh id is a UUID (Node caches its entropy, so this is cheap). */
export function requestIdFor(client: string | undefined): string {
  return client !== undefined && CLIENT_ID.test(client) ? client : randomUUID();
}
