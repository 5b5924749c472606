/**
 * The gRPC front end (proto/control_plane.proto): decodes, authenticates, calls the
 * EventService, encodes. It is the twin of http/rest-server.ts: an event is turned into the
 * JSON body REST would have received and validated by the same code, so both front ends
 * accept, refuse and name errors identically. The .proto documents where proto3 forces a
 * translation.
 */
import {
  Metadata,
  Server,
  ServerCredentials,
  type MethodDefinition,
  type StatusObject,
  type ServerUnaryCall,
  type ServiceDefinition,
  type UntypedServiceImplementation,
  type handleUnaryCall,
  type sendUnaryData,
} from '@grpc/grpc-js';
import { loadSync, type Options } from '@grpc/proto-loader';
import type { Logger } from 'pino';
import { isValidAppName } from '../../../proto/names.js';
import type { AppSettings, Container } from '../../../proto/records.js';
import { sourcePath } from '../../../proto/source-path.js';
import { SIGNATURE_HEADER, type Authenticator } from '../auth.js';
import type { EventService } from '../core/event-service.js';
import { appView, routeView, type AppView, type RouteView } from '../core/views.js';
import { ApiError, invalidField } from '../errors.js';
import { BODY_LIMIT } from '../http/rest-server.js';

export interface GrpcServerDeps {
  service: EventService;
  auth: Authenticator;
  log: Logger;
  platformDomain: string;
}

/** The .proto stays in the source tree; compiled code runs from dist/. */
export const CONTROL_PLANE_PROTO = sourcePath(import.meta.url, '..', '..', '..', 'proto', 'control_plane.proto');

const CONTROL_PLANE_SERVICE = 'router.controlplane.v1.ControlPlane';

/**
 * `defaults: false` keeps absent fields absent, which the event mapping relies on (an unset
 * message is not an empty one); `longs: Number` because the core works in JS numbers and
 * refuses anything above 2^53 - 1 anyway. Exported so clients (tests) decode the same way.
 */
export const PROTO_LOADER_OPTIONS: Options = { keepCase: true, longs: Number, enums: String, defaults: false, oneofs: true };

function loadControlPlaneService(): ServiceDefinition {
  const definition = loadSync(CONTROL_PLANE_PROTO, PROTO_LOADER_OPTIONS)[CONTROL_PLANE_SERVICE];
  if (definition === undefined || 'format' in definition) throw new Error(`${CONTROL_PLANE_PROTO} does not define the service ${CONTROL_PLANE_SERVICE}`);
  return definition as ServiceDefinition;
}

/** What a handler receives: the decoded message and the bytes a hook signature covers. */
interface Received<T> {
  raw: Buffer;
  message: T;
}

/**
 * Signatures must be checked over the bytes received, never a re-serialization (protobuf
 * encoding is not canonical), and grpc-js hands handlers only the decoded message: so the
 * decoder is wrapped to keep the bytes alongside. A decoding failure still throws inside
 * grpc-js, which answers it without reaching a handler.
 */
function keepingRawBytes(definition: ServiceDefinition): ServiceDefinition {
  const wrapped: Record<string, MethodDefinition<Received<unknown>, unknown>> = {};
  for (const [name, method] of Object.entries(definition)) {
    const decode = method.requestDeserialize as (raw: Buffer) => unknown;
    wrapped[name] = { ...method, requestDeserialize: (raw: Buffer): Received<unknown> => ({ raw, message: decode(raw) }) };
  }
  return wrapped;
}

interface ContainerMessage {
  id?: string;
  host?: string;
  port?: number;
}

interface CertificateMessage {
  domain?: string;
  cert?: string;
  key?: string;
  remove?: boolean;
}

interface SettingsMessage {
  force_https?: boolean;
  sticky_sessions?: boolean;
  hsts_max_age?: number;
  balancer?: string;
}

interface EventMessage {
  id?: string;
  app?: string;
  seq?: number;
  type?: string;
  containers?: ContainerMessage[];
  domains?: string[];
  certificate?: CertificateMessage;
  settings?: SettingsMessage;
}

interface GetAppRequest {
  app?: string;
}

interface ResolveHostRequest {
  hostname?: string;
}

/**
 * The JSON body REST would have received for this message. Proto3 cannot tell an unset
 * scalar from its zero value nor an empty list from an absent one, so unset scalars become
 * their zero value (refused by the validator as out of range) and lists are passed only where
 * their absence would mean something else than their emptiness: see the Event message.
 */
function eventBody(msg: EventMessage): Record<string, unknown> {
  const type = msg.type ?? '';
  const body: Record<string, unknown> = { id: msg.id ?? '', app: msg.app ?? '', seq: msg.seq ?? 0, type };
  const containers = msg.containers ?? [];
  // Empty on deploy/scale/restart: omitted, so the answer is "is required" as over REST.
  if (containers.length > 0) body['containers'] = containers.map((c) => ({ id: c.id ?? '', host: c.host ?? '', port: c.port ?? 0 }));
  const domains = msg.domains ?? [];
  // An empty list on a domains event is meaningful: it detaches every custom domain.
  if (type === 'domains' || domains.length > 0) body['domains'] = domains;
  if (msg.certificate !== undefined) {
    const { domain = '', cert = '', key = '', remove = false } = msg.certificate;
    if (remove) {
      // A cert or key sent along with remove is passed on so the validator refuses it.
      const extra: Record<string, string> = {};
      if (cert !== '') extra['cert'] = cert;
      if (key !== '') extra['key'] = key;
      body['certificate'] = { domain, remove: true, ...extra };
    } else {
      body['certificate'] = { domain, cert, key };
    }
  }
  if (msg.settings !== undefined) {
    const s = msg.settings;
    const patch: Record<string, unknown> = {};
    if (s.force_https !== undefined) patch['force_https'] = s.force_https;
    if (s.sticky_sessions !== undefined) patch['sticky_sessions'] = s.sticky_sessions;
    if (s.hsts_max_age !== undefined) patch['hsts_max_age'] = s.hsts_max_age;
    if (s.balancer !== undefined) patch['balancer'] = s.balancer;
    body['settings'] = patch;
  }
  return body;
}

interface SettingsReply {
  force_https: boolean;
  sticky_sessions: boolean;
  hsts_max_age: number;
  balancer: string;
}

function settingsReply(s: AppSettings): SettingsReply {
  return { force_https: s.force_https, sticky_sessions: s.sticky_sessions, hsts_max_age: s.hsts_max_age, balancer: s.balancer };
}

function containersReply(containers: readonly Container[]): Container[] {
  return containers.map((c) => ({ id: c.id, host: c.host, port: c.port }));
}

function appReply(view: AppView): Record<string, unknown> {
  return {
    app: view.app,
    status: view.status,
    seq: view.seq,
    version: view.version,
    containers: containersReply(view.containers),
    hostnames: view.hostnames,
    domains: view.domains,
    settings: settingsReply(view.settings),
    certificates: view.certificates.map((c) => ({ domain: c.domain, not_after: c.not_after, fingerprint256: c.fingerprint256, expires_in_days: c.expires_in_days })),
    created_at: view.created_at,
    updated_at: view.updated_at,
  };
}

function routeReply(view: RouteView): Record<string, unknown> {
  return {
    hostname: view.hostname,
    matched: view.matched,
    app: view.app,
    status: view.status,
    containers: containersReply(view.containers),
    settings: settingsReply(view.settings),
    certificate_domain: view.certificate?.domain ?? '',
    version: view.version,
  };
}

function firstValue(metadata: Metadata, key: string): string | undefined {
  const value = metadata.get(key)[0];
  return typeof value === 'string' ? value : undefined;
}

// grpc-js throws on metadata values outside printable ASCII; an error answer must not.
const METADATA_VALUE_RE = /^[\x20-\x7e]*$/;

export class GrpcFront {
  private readonly server: Server;
  private readonly service: EventService;
  private readonly auth: Authenticator;
  private readonly log: Logger;
  private readonly platformDomain: string;

  constructor(deps: GrpcServerDeps) {
    this.service = deps.service;
    this.auth = deps.auth;
    this.log = deps.log;
    this.platformDomain = deps.platformDomain;
    // The same bound as REST's body limit, so no event is accepted by one front end only.
    this.server = new Server({ 'grpc.max_receive_message_length': BODY_LIMIT });
    const implementation: UntypedServiceImplementation = {
      ApplyEvent: this.unary<EventMessage>('ApplyEvent', async (msg) => {
        const result = await this.service.applyEvent(eventBody(msg));
        return { applied: result.applied, version: result.version, duplicate: result.duplicate === true };
      }),
      GetApp: this.unary<GetAppRequest>('GetApp', async (msg) => {
        const app = msg.app ?? '';
        if (!isValidAppName(app)) throw invalidField('app', 'must match ^[a-z0-9][a-z0-9-]{0,62}$');
        return appReply(appView(await this.service.getApp(app), this.platformDomain));
      }),
      ResolveHost: this.unary<ResolveHostRequest>('ResolveHost', async (msg) => routeReply(routeView(await this.service.resolveHost(msg.hostname ?? '')))),
    };
    this.server.addService(keepingRawBytes(loadControlPlaneService()), implementation);
  }

  /** Resolves with the bound port (useful with port 0). */
  listen(host: string, port: number): Promise<number> {
    const address = host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound)));
    });
  }

  /** Lets calls in flight finish, but no longer than 2 s: a stuck client must not block a shutdown. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 2000);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private unary<T>(method: string, handle: (message: T) => Promise<object>): handleUnaryCall<Received<T>, object> {
    return (call: ServerUnaryCall<Received<T>, object>, callback: sendUnaryData<object>): void => {
      this.authenticate(call.metadata, call.request.raw)
        .then(() => handle(call.request.message))
        .then(
          (reply) => callback(null, reply),
          (err: unknown) => callback(this.errorStatus(method, err)),
        );
    };
  }

  private async authenticate(metadata: Metadata, raw: Buffer): Promise<void> {
    const signature = firstValue(metadata, SIGNATURE_HEADER);
    if (!this.auth.precheck({ authorization: firstValue(metadata, 'authorization'), signature })) return;
    try {
      await this.auth.verifySignature(signature!, raw);
    } catch (err) {
      // Claiming the signature against replays is a Redis write: its failure is the
      // store's, answered STORE_UNAVAILABLE as over REST, not a bug.
      throw this.service.toApiError(err, 'claim_signature');
    }
  }

  private errorStatus(method: string, err: unknown): Partial<StatusObject> {
    let apiError: ApiError;
    if (err instanceof ApiError) {
      apiError = err;
      if (apiError.httpStatus >= 500) this.log.warn({ code: apiError.code, method, err: apiError.message }, 'grpc request failed');
      else this.log.info({ code: apiError.code, method, reason: apiError.message }, 'grpc request refused');
    } else {
      this.log.error({ err, method }, 'grpc handler failed');
      apiError = new ApiError('INTERNAL', 'an unexpected error; see the control plane log');
    }
    const metadata = new Metadata();
    metadata.set('error-code', apiError.code);
    if (apiError.field !== undefined && METADATA_VALUE_RE.test(apiError.field)) metadata.set('error-field', apiError.field);
    return { code: apiError.grpcStatus, details: `${apiError.code}: ${apiError.message}`, metadata };
  }
}
