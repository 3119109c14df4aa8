/**
 * Errors the admin API answers with: an HTTP status, a stable code, a message, and the
 * request field at fault when there is one (`{ "error": { code, message, field } }`).
 */
export const ApiErrorCode = {
  BAD_REQUEST: 'ERR_API_BAD_REQUEST',
  UNAUTHORIZED: 'ERR_API_UNAUTHORIZED',
  NOT_FOUND: 'ERR_API_NOT_FOUND',
  CONFLICT: 'ERR_API_CONFLICT',
  UNAVAILABLE: 'ERR_API_UNAVAILABLE',
  INTERNAL: 'ERR_API_INTERNAL',
} as const;

export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly status: number;
  readonly code: string;
  readonly field: string | undefined;

  constructor(status: number, code: string, message: string, field?: string) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export function badRequest(field: string, message: string): ApiError {
  return new ApiError(400, ApiErrorCode.BAD_REQUEST, message, field);
}

export function notFound(field: string, message: string): ApiError {
  return new ApiError(404, ApiErrorCode.NOT_FOUND, message, field);
}
