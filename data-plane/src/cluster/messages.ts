/**
 * What the cluster primary and its workers say to each other over IPC.
 */
export type PrimaryToWorker =
  | { type: 'router:drain' }
  | { type: 'router:readiness?'; id: number };

export type WorkerToPrimary =
  | { type: 'router:listening'; port: number }
  | { type: 'router:readiness'; id: number; ready: boolean; detail: Record<string, unknown> };

export function isMessage<T extends { type: string }>(value: unknown, type: T['type']): value is T {
  return typeof value === 'object' && value !== null && (value as { type?: unknown }).type === type;
}
