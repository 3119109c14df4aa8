/**
 * The shape every command executor has, and the rows of the opcode registry
 * (../opcode-registry.ts) that spc/ and sbc/ contribute.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import type { CommandPolicy } from '../command-policy.ts';
import type { LogicalUnit } from '../logical-unit.ts';

/**
 * What an executor did with the command:
 * - DONE: the outputs (status, sense, dataInLength) are set; executeCommand calls finish().
 * - PENDING: backing I/O was issued; its continuation (cmd.onIo) sets the outputs and
 *   calls finish() (possibly already, before the executor returned: RAM I/O is
 *   synchronous). executeCommand must not touch the command again.
 */
export const Completion = {
  DONE: 0,
  PENDING: 1,
} as const;
export type Completion = (typeof Completion)[keyof typeof Completion];

/** Parse and execute one command for `lu`. Must not throw for any CDB content. */
export type CommandHandler = (lu: LogicalUnit, cmd: ScsiCommand) => Completion;

/**
 * One supported command, a row of the opcode registry: the dispatch table, REPORT
 * SUPPORTED OPERATION CODES (SPC-4 6.35), the CDB length and every per-command decision
 * of the pipeline (`policy`) come from these rows.
 */
export interface CommandDescriptor {
  readonly opcode: number;
  /** Service action, for opcodes that dispatch on one (SPC-4 4.2.2.2). */
  readonly serviceAction?: number;
  readonly name: string;
  /**
   * CDB USAGE DATA (SPC-4 6.35.3): byte 0 is the opcode, then per CDB byte a mask of the
   * bits the device server evaluates (for service-action opcodes byte 1 holds the
   * service action in bits 4..0). Its length is the CDB length.
   */
  readonly usage: readonly number[];
  readonly handler: CommandHandler;
  /**
   * Whether this LU supports the command (absent: every LU does). A command an LU does not
   * support is dispatched and reported (REPORT SUPPORTED OPERATION CODES) as if it were
   * not in the table, e.g. SANITIZE BLOCK ERASE only on thin-provisioned LUs.
   */
  readonly supported?: (lu: LogicalUnit) => boolean;
  /** What each pipeline stage does with the command (../command-policy.ts). */
  readonly policy: CommandPolicy;
}

/**
 * A registry row for a command spindle knows but does not execute (it ends with INVALID
 * COMMAND OPERATION CODE, or INVALID FIELD IN CDB for a service action of an opcode that
 * has executed ones), so that its policy is explicit: e.g. RECEIVE DIAGNOSTIC RESULTS,
 * admitted in ALUA standby, or the other service actions of MAINTENANCE IN.
 */
export interface KnownOpcode {
  readonly opcode: number;
  /**
   * Absent for an opcode without service actions; 'other' for every service action of
   * the opcode that no other row names. An opcode with service-action rows has exactly
   * one 'other' row.
   */
  readonly serviceAction?: number | 'other';
  readonly name: string;
  /** Not executed. */
  readonly handler: null;
  readonly policy: CommandPolicy;
}

/** A row of the opcode registry. */
export type OpcodeRow = CommandDescriptor | KnownOpcode;

/**
 * CDB usage: the control byte's NACA (bit 2, ACA on CHECK CONDITION, task-set.ts) and
 * LINK (bit 0, rejected when set: linked commands are obsolete) are evaluated.
 */
export const CTL = 0x05;
/** The control byte's LINK bit (SAM-5 5.2). */
export const CTL_LINK = 0x01;
/** The control byte's NACA bit (SAM-5 5.2, 5.9). */
export const CTL_NACA = 0x04;
/** CDB usage: every bit of the byte is evaluated. */
export const FF = 0xff;
