/**
 * The HTTP API's error catalogue: every answer that is not a success carries one of these
 * codes in the control plane's shape, `{"code", "message"}`. docs/API.md lists them.
 */

export const SHIPPER_ERRORS = {
  UNAUTHENTICATED: { http: 401, hint: 'Send Authorization: Bearer <token>, one of LOG_SHIPPER_TOKEN.' },
  INVALID_APP: { http: 400, hint: 'The app in the path is not an app name (^[a-z0-9][a-z0-9-]{0,62}$).' },
  INVALID_PARAMETER: { http: 400, hint: 'A query parameter has a bad value; the message says which and what it must be.' },
  UNKNOWN_PARAMETER: { http: 400, hint: 'Remove the query parameter named in the message: it is not part of the API.' },
  METHOD_NOT_ALLOWED: { http: 405, hint: 'Only GET (and HEAD for the probes) is served.' },
  NOT_FOUND: { http: 404, hint: 'No such endpoint; see docs/API.md.' },
  INTERNAL: { http: 500, hint: 'A bug: the shipper log has the details.' },
} as const satisfies Record<string, { http: number; hint: string }>;

export type ShipperErrorCode = keyof typeof SHIPPER_ERRORS;

export class ShipperHttpError extends Error {
  override readonly name = 'ShipperHttpError';
  constructor(
    readonly code: ShipperErrorCode,
    message: string,
  ) {
    super(message);
  }

  get httpStatus(): number {
    return SHIPPER_ERRORS[this.code].http;
  }

  toJSON(): { code: ShipperErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}
