/**
 * Variables the deploy files give a service before its declaration reaches this branch.
 * Each entry copies the declaration from the branch that adds it (name, description,
 * default, secret flag) so the generated env files can describe it; `declaredVariables`
 * refuses an entry once the service declares the name itself, which is the signal to delete
 * it here and regenerate.
 */
import { optional, parse, type Variable } from '../proto/config/env.js';

/** Added by the routerlogs branch (data-plane/src/config.ts there): remove at merge. */
/** Nothing pending: every variable the deploy files give the router is declared by it. */
export const pendingRouterVariables: readonly Variable<unknown>[] = [];

/** The service's own declarations followed by its pending ones; a pending name it already declares is an error. */
export function declaredVariables(own: Record<string, Variable<unknown>>, pending: readonly Variable<unknown>[] = []): Variable<unknown>[] {
  const list = Object.values(own);
  const names = new Set(list.map((v) => v.name));
  for (const p of pending) {
    if (names.has(p.name)) throw new Error(`${p.name} is declared by the service now: remove it from deploy/pending-variables.ts and run npm run gen:deploy-env`);
  }
  return [...list, ...pending];
}
