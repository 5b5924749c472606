/**
 * `routerctl logs`: the log-shipper's tail endpoint (NDJSON over chunked HTTP), printed line
 * by line as it arrives, until the server ends it or the user interrupts a --follow.
 */
import { CliError, EXIT, send, type Endpoint } from './http-client.js';

export async function tail(endpoint: Endpoint, app: string, lines: number, follow: boolean, out: (line: string) => void, signal?: AbortSignal): Promise<void> {
  if (endpoint.token === undefined) throw new CliError('LOG_SHIPPER_TOKEN is not set (or pass --log-shipper-token)', EXIT.USAGE, 'USAGE');
  const res = await send(endpoint, 'GET', `/v1/apps/${encodeURIComponent(app)}/logs?lines=${lines}${follow ? '&follow=1' : ''}`);
  if (res.body === null) return;
  const reader = res.body.getReader();
  const onAbort = (): void => void reader.cancel().catch(() => undefined);
  signal?.addEventListener('abort', onAbort, { once: true });
  const decoder = new TextDecoder();
  let pending = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line.length > 0) out(line);
      }
    }
    if (pending.length > 0) out(pending);
  } catch (err) {
    if (signal?.aborted !== true) throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
