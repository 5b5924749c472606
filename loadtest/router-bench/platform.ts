/**
 * The benchmark's deploy hook: events to the control plane's REST API, with the per-app
 * `seq` the API requires to be increasing.
 */
import { Pool } from 'undici';
import { HOST, TOKEN } from './processes.js';

export interface Container {
  id: string;
  host: string;
  port: number;
}

export function container(id: string, port: number): Container {
  return { id, host: HOST, port };
}

export class Platform {
  private readonly pool: Pool;
  private readonly seqs = new Map<string, number>();
  private nextId = 0;
  /** Event ids are unique per run: the control plane remembers ids for a day. */
  private readonly run = `${process.pid}-${Date.now().toString(36)}`;

  constructor(port: number) {
    this.pool = new Pool(`http://${HOST}:${port}`, { connections: 64, pipelining: 1, headersTimeout: 10_000, bodyTimeout: 10_000 });
  }

  /** Resolves when the control plane answered 200 (the write is in Redis and published). */
  event(app: string, type: 'deploy' | 'scale', containers: Container[]): Promise<void> {
    return this.send(app, type, { containers });
  }

  /** Any event type; `fields` are the type's own (`domains`, `certificate`…), see docs/API.md. */
  async send(app: string, type: string, fields: Record<string, unknown>): Promise<void> {
    const seq = (this.seqs.get(app) ?? 0) + 1;
    this.seqs.set(app, seq);
    const body = JSON.stringify({ id: `rb-${this.run}-${++this.nextId}`, app, seq, type, ...fields });
    const res = await this.pool.request({
      path: '/v1/events',
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body,
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`control plane answered ${res.statusCode} to ${type} ${app}: ${text}`);
  }

  deploy(app: string, containers: Container[]): Promise<void> {
    return this.event(app, 'deploy', containers);
  }

  scale(app: string, containers: Container[]): Promise<void> {
    return this.event(app, 'scale', containers);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
