/**
 * Errors that cross a thread boundary on the control plane. A handler's failure travels
 * back to the requester as `{ code, message }` and is rethrown there as a ControlError
 * with the same code, so callers branch on a stable code, never on message text.
 */

export const ControlErrorCode = {
  /** No reply within the request's timeout. */
  TIMEOUT: 'ERR_CONTROL_TIMEOUT',
  /** The message does not match the protocol (unknown type, bad body shape). */
  MALFORMED: 'ERR_CONTROL_MALFORMED',
  /** The peer has no handler for this request type. */
  UNSUPPORTED: 'ERR_CONTROL_UNSUPPORTED',
  /** The endpoint was closed (the worker exited) before the reply came. */
  CLOSED: 'ERR_CONTROL_CLOSED',
  /** A handler failed without a code of its own. */
  INTERNAL: 'ERR_SPINDLE_INTERNAL',
  /** A backing store could not be opened or changed (LUN worker start, reload). */
  BACKING: 'ERR_SPINDLE_BACKING',
  /** A portal could not be bound. */
  LISTEN: 'ERR_SPINDLE_LISTEN',
} as const;

export class ControlError extends Error {
  override readonly name = 'ControlError';
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** The code of any thrown value: its own string `code`, or INTERNAL. */
export function errorCode(err: unknown): string {
  const c = (err as { code?: unknown } | null)?.code;
  return typeof c === 'string' && c !== '' ? c : ControlErrorCode.INTERNAL;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
