/**
 * The control plane's error catalogue: every answer that is not a success carries one of
 * these codes, the same over REST (HTTP status) and gRPC (status code). docs/API.md lists
 * them all, and a test keeps the two in step.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';

interface Definition {
  http: number;
  grpc: GrpcStatus;
  /** What the caller should do about it, for the docs. */
  hint: string;
}

export const ERRORS = {
  BAD_REQUEST: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, hint: 'The HTTP request itself is malformed (URL, headers); the message says how.' },
  INVALID_JSON: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, hint: 'Send a JSON object body with Content-Type: application/json.' },
  INVALID_FIELD: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, hint: 'Fix the field named in `field`; the message says what it must be.' },
  UNKNOWN_FIELD: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, hint: 'Remove the field named in `field`: it is not part of the API.' },
  INVALID_CERTIFICATE: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, hint: 'Send a valid PEM chain (leaf first) and its unencrypted key covering the domain.' },
  BODY_TOO_LARGE: { http: 413, grpc: GrpcStatus.RESOURCE_EXHAUSTED, hint: 'Bodies are limited to 1 MiB.' },
  UNSUPPORTED_MEDIA_TYPE: { http: 415, grpc: GrpcStatus.INVALID_ARGUMENT, hint: 'Send Content-Type: application/json.' },
  UNAUTHENTICATED: { http: 401, grpc: GrpcStatus.UNAUTHENTICATED, hint: 'Send Authorization: Bearer <token> or a valid X-Platform-Signature; the message says what was wrong.' },
  APP_NOT_FOUND: { http: 404, grpc: GrpcStatus.NOT_FOUND, hint: 'The app does not exist (never created, or deleted).' },
  ROUTE_NOT_FOUND: { http: 404, grpc: GrpcStatus.NOT_FOUND, hint: 'No app answers on that hostname: routers answer 404 for it.' },
  NOT_FOUND: { http: 404, grpc: GrpcStatus.UNIMPLEMENTED, hint: 'No such endpoint; see docs/API.md.' },
  STALE_EVENT: { http: 409, grpc: GrpcStatus.FAILED_PRECONDITION, hint: 'The app already applied an event with this seq or a higher one; nothing was written.' },
  DOMAIN_TAKEN: { http: 409, grpc: GrpcStatus.ALREADY_EXISTS, hint: 'Another app owns this domain, or it is reserved for an app under the platform domain.' },
  DOMAIN_NOT_ATTACHED: { http: 409, grpc: GrpcStatus.FAILED_PRECONDITION, hint: 'Attach the domain to the app with a `domains` event before sending its certificate.' },
  IDEMPOTENCY_KEY_REUSED: { http: 409, grpc: GrpcStatus.ALREADY_EXISTS, hint: 'This event id was already used for a different event: use a new id.' },
  STORE_UNAVAILABLE: { http: 503, grpc: GrpcStatus.UNAVAILABLE, hint: 'Redis is unreachable; retry with the same event id once it is back.' },
  ENCRYPTION_KEY_MISSING: { http: 503, grpc: GrpcStatus.FAILED_PRECONDITION, hint: 'The control plane has no KEY_ENCRYPTION_KEY, so it cannot store private keys: its operator must set it; nothing was written.' },
  CONTENTION: { http: 503, grpc: GrpcStatus.ABORTED, hint: 'Too many concurrent writers on one app; retry with the same event id.' },
  INTERNAL: { http: 500, grpc: GrpcStatus.INTERNAL, hint: 'A bug: the control plane log has the details under the request id.' },
} as const satisfies Record<string, Definition>;

export type ErrorCode = keyof typeof ERRORS;

export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly code: ErrorCode;
  /** The offending field as a path (`containers[2].port`), for validation errors. */
  readonly field: string | undefined;

  constructor(code: ErrorCode, message: string, field?: string) {
    super(message);
    this.code = code;
    this.field = field;
  }

  get httpStatus(): number {
    return ERRORS[this.code].http;
  }

  get grpcStatus(): GrpcStatus {
    return ERRORS[this.code].grpc;
  }

  toJSON(): { code: ErrorCode; message: string; field?: string } {
    return this.field === undefined ? { code: this.code, message: this.message } : { code: this.code, message: this.message, field: this.field };
  }
}

export function invalidField(field: string, message: string): ApiError {
  return new ApiError('INVALID_FIELD', `${field}: ${message}`, field);
}
