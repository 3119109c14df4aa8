/**
 * How a command ends when its backing-store request completes: GOOD, or CHECK CONDITION
 * with the sense backing/io-errors.ts maps the error to, the error noted in the LU's
 * burst-limited log.
 *
 * The continuations of the hot path (READ, WRITE, SYNCHRONIZE CACHE) are created once per
 * LU (LogicalUnit.io) and reached through cmd.onIo / cmd.ioTrampoline, so completing an
 * I/O allocates nothing; they need their LU for the error path, which is why they are
 * per LU rather than module functions.
 */
import type { IoContinuation, ScsiCommand } from '../../../shared/scsi/command.ts';
import { ScsiStatus } from '../../../shared/scsi/command.ts';
import { cdbLba } from '../../../shared/scsi/cdb.ts';
import { setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { IoOperation } from '../backing/io-errors.ts';
import { ioErrorSense } from '../backing/io-errors.ts';
import type { LogicalUnit } from '../logical-unit.ts';

export interface IoContinuations {
  /** READ: MEDIUM ERROR, UNRECOVERED READ ERROR and the like on failure. */
  readonly read: IoContinuation;
  /** WRITE: MEDIUM ERROR, WRITE ERROR and the like on failure. */
  readonly write: IoContinuation;
  /** SYNCHRONIZE CACHE: a failed flush is a WRITE ERROR (data did not reach the medium). */
  readonly flush: IoContinuation;
}

/** Complete `cmd` with the sense for `err`, and note it in the LU's I/O error log. */
export function failIo(
  lu: LogicalUnit,
  cmd: ScsiCommand,
  op: IoOperation,
  err: NodeJS.ErrnoException,
  position: number,
): void {
  const sense = ioErrorSense(op, err);
  lu.ioErrors.note(op, err, position, sense);
  setCheckCondition(cmd, sense);
}

export function ioContinuations(lu: LogicalUnit): IoContinuations {
  const done =
    (op: IoOperation): IoContinuation =>
    (cmd, err) => {
      if (err === null) cmd.status = ScsiStatus.GOOD;
      else failIo(lu, cmd, op, err, op === 'flush' ? 0 : cdbLba(cmd.cdb) * lu.blockSize);
      cmd.finish();
    };
  return { read: done('read'), write: done('write'), flush: done('flush') };
}
