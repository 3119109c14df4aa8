/**
 * Backing-store errors as SCSI sense, and the log of them.
 *
 * Sense (SPC-4 4.5.6, annex F), by errno of the failed request:
 *   EIO, ENODATA, EILSEQ, ETIMEDOUT, EREMOTEIO (the medium failed this request)
 *       read:  MEDIUM ERROR, UNRECOVERED READ ERROR (03/11/00)
 *       write: MEDIUM ERROR, WRITE ERROR (03/0C/00); also a failed cache flush
 *   ENXIO, ENODEV, ENOMEDIUM, ESHUTDOWN, ENOTCONN (the device is gone: hot-unplugged,
 *   detached loop device, removed dm table, lost transport)
 *       HARDWARE ERROR, LOGICAL UNIT FAILURE (04/3E/01)
 *   ENOSPC, EDQUOT (a sparse file could not allocate: the file system is full)
 *       DATA PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT (07/27/07, SBC-4 4.7.3.6)
 *   EROFS, EPERM, EACCES on a write (the device turned read-only under us)
 *       DATA PROTECT, WRITE PROTECTED (07/27/00)
 *   anything else (EINVAL: a request the target itself got wrong)
 *       HARDWARE ERROR, INTERNAL TARGET FAILURE (04/44/00)
 *
 * Log: a failing device fails every command that reaches it, possibly thousands per
 * second. The first error of a burst is logged at once with its details; further errors
 * are only counted, and when the LU has been free of errors for QUIET_MS the burst ends
 * with one line carrying the count. Nothing here runs on a successful I/O.
 */
import type { SenseDetail } from '../../../shared/scsi/sense.ts';
import { SenseReason } from '../../../shared/scsi/sense.ts';

/** What a failed request was doing. */
export type IoOperation = 'read' | 'write' | 'flush' | 'discard';

const MEDIUM = new Set(['EIO', 'ENODATA', 'EILSEQ', 'ETIMEDOUT', 'EREMOTEIO']);
const GONE = new Set(['ENXIO', 'ENODEV', 'ENOMEDIUM', 'ESHUTDOWN', 'ENOTCONN']);
const NO_SPACE = new Set(['ENOSPC', 'EDQUOT']);
const READ_ONLY = new Set(['EROFS', 'EPERM', 'EACCES']);

/** The sense a command reports when its backing-store request failed with `err`. */
export function ioErrorSense(op: IoOperation, err: NodeJS.ErrnoException): SenseDetail {
  const code = err.code ?? '';
  if (MEDIUM.has(code)) return op === 'read' ? SenseReason.UNRECOVERED_READ_ERROR : SenseReason.WRITE_ERROR;
  if (GONE.has(code)) return SenseReason.LOGICAL_UNIT_FAILURE;
  if (op !== 'read' && NO_SPACE.has(code)) return SenseReason.SPACE_ALLOCATION_FAILED_WRITE_PROTECT;
  if (op !== 'read' && READ_ONLY.has(code)) return SenseReason.WRITE_PROTECTED;
  return SenseReason.INTERNAL_TARGET_FAILURE;
}

/** One line of the I/O error log (LuEnvironment.reportIoError). */
export interface IoErrorReport {
  readonly device: string;
  /** 'first': the first error of a burst (with its details); 'summary': the burst ended. */
  readonly kind: 'first' | 'summary';
  readonly op?: IoOperation;
  readonly code?: string;
  readonly message?: string;
  /** Byte position of the failed request. */
  readonly position?: number;
  readonly sense?: string;
  /** Errors in the burst after the first one (summary). */
  readonly suppressed?: number;
  /** Length of the burst in ms (summary). */
  readonly durationMs?: number;
}

/** A burst ends after this long without an error. */
export const IO_ERROR_QUIET_MS = 5000;

/** Per-LU error log with burst suppression (see the file comment). */
export class IoErrorLog {
  readonly device: string;
  readonly #report: (r: IoErrorReport) => void;
  readonly #quietMs: number;
  #inBurst = false;
  #suppressed = 0;
  #burstStart = 0;
  #lastError = 0;
  #timer: NodeJS.Timeout | null = null;
  /** Errors seen since the LU opened (tests, stats). */
  total = 0;

  constructor(device: string, report: (r: IoErrorReport) => void, quietMs = IO_ERROR_QUIET_MS) {
    this.device = device;
    this.#report = report;
    this.#quietMs = quietMs;
  }

  /** A request failed: log it if it starts a burst, count it otherwise. */
  note(op: IoOperation, err: NodeJS.ErrnoException, position: number, sense: SenseDetail): void {
    this.total++;
    const now = Date.now();
    this.#lastError = now;
    if (this.#inBurst) {
      this.#suppressed++;
      return;
    }
    this.#inBurst = true;
    this.#burstStart = now;
    this.#suppressed = 0;
    this.#report({
      device: this.device,
      kind: 'first',
      op,
      code: err.code ?? 'unknown',
      message: err.message,
      position,
      sense: senseText(sense),
    });
    this.#arm(this.#quietMs);
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(() => this.#check(), ms);
    this.#timer.unref(); // never keeps a stopping worker alive
  }

  #check(): void {
    this.#timer = null;
    const idle = Date.now() - this.#lastError;
    if (idle < this.#quietMs) return this.#arm(this.#quietMs - idle);
    this.#end();
  }

  #end(): void {
    this.#inBurst = false;
    if (this.#suppressed > 0) {
      this.#report({
        device: this.device,
        kind: 'summary',
        suppressed: this.#suppressed,
        durationMs: this.#lastError - this.#burstStart,
      });
    }
    this.#suppressed = 0;
  }

  /** The LU closes: end a burst in progress (its summary, if any, is logged now). */
  close(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#inBurst) this.#end();
  }
}

function senseText(d: SenseDetail): string {
  const h = (n: number): string => n.toString(16).padStart(2, '0');
  return `${h(d.key)}/${h(d.asc)}/${h(d.ascq)}`;
}
