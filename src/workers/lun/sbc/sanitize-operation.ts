/**
 * A sanitize operation (SBC-4 4.11) as the logical unit carries it out, apart from the
 * SANITIZE command that requested it (sanitize.ts parses that command).
 *
 * The operation belongs to the LU, not to a command or an I_T nexus:
 *   - it starts once the commands already in flight are done, and from then on the LU
 *     answers NOT READY, LOGICAL UNIT NOT READY, SANITIZE IN PROGRESS to everything but
 *     the few commands sbc/state.ts lets through (SBC-4 4.11.2), with the progress
 *     indication in the sense-key specific bytes (SPC-4 4.5.2.4.4). REQUEST SENSE reports
 *     the same as pollable sense data (spc/unit-status.ts);
 *   - with IMMED = 0 the SANITIZE command waits for it (SBC-4 5.30.1). A task management
 *     function that aborts that command (ABORT TASK, ABORT TASK SET, CLEAR TASK SET,
 *     LOGICAL UNIT RESET, target resets) ends the command at once and leaves the
 *     operation running: SBC-4 4.11.2 has a logical unit reset suspend the operation and
 *     resume it afterwards, and an I_T nexus loss not even suspend it, which for an
 *     operation that keeps no per-command state is the same as carrying on
 *     (task-management.ts calls releaseWaiter);
 *   - a power on resumes it (SBC-4 4.11.2): for a LU on a file or block device a record under
 *     `<stateDir>/sanitize/<device>.json` says that a sanitize is running or has failed,
 *     and an LU that opens with a running record starts the operation again from LBA 0
 *     (every method is idempotent), so a restart never leaves half-sanitized data
 *     readable. A RAM LU keeps no record: a restart loses its contents anyway.
 *
 * Methods (SBC-4 4.11.4, 5.30.2):
 *   OVERWRITE  OVERWRITE COUNT passes of the initialization pattern, inverted on every
 *              other pass with INVERT = 1 so that the last pass writes the pattern itself.
 *   BLOCK ERASE / CRYPTOGRAPHIC ERASE (thin LUs, sanitize.ts): every block is written with
 *              zeros and then marked deallocated (LBPRZ = 1).
 *
 * Writes are durable one chunk at a time (the store's write-through path, O_DSYNC for a
 * file) rather than written back and flushed at the end: the progress indication then
 * counts blocks that are on the medium, and a sanitize of a large LU does not fill the
 * host page cache with dirty pages that every other LU of the node would have to wait
 * behind. The work runs in CHUNK_BYTES steps with a yield between them (bulk.ts), so the
 * LUN worker keeps serving its other LUs.
 */
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { ScsiStatus } from '../../../shared/scsi/command.ts';
import { SanitizeAction } from '../../../shared/scsi/opcodes.ts';
import { SenseReason, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { fillBlocks, yieldTurn, zeroBlock } from './bulk.ts';

/** What a sanitize operation does: the validated SANITIZE command (sanitize.ts). */
export interface SanitizePlan {
  /** SanitizeAction.OVERWRITE, BLOCK_ERASE or CRYPTOGRAPHIC_ERASE. */
  readonly action: number;
  /** AUSE: a failure may be left with EXIT FAILURE MODE (SBC-4 4.11.3, 5.30.1). */
  readonly ause: boolean;
  /** OVERWRITE COUNT (1-31); 1 for the erase methods. */
  readonly count: number;
  /** INVERT (OVERWRITE). */
  readonly invert: boolean;
  /** OVERWRITE: the initialization pattern repeated to one logical block. */
  readonly block: Buffer | null;
}

/** `<stateDir>/sanitize/<device>.json`. */
interface SanitizeRecord {
  version: 1;
  device: string;
  state: 'running' | 'failed';
  action: number;
  ause: boolean;
  count: number;
  invert: boolean;
  /** OVERWRITE: one block of pattern, hex. */
  pattern: string | null;
}

export type SanitizeOutcome = 'done' | 'failed' | 'suspended';

export class SanitizeOperation {
  readonly plan: SanitizePlan;
  /** Blocks written so far, over every pass. */
  done = 0;
  /** Blocks the whole operation writes (capacity x passes). */
  readonly total: number;
  /** The SANITIZE command with IMMED = 0 that waits for the end (null: none, or released). */
  waiter: ScsiCommand | null;
  /** Set by the end of run(). */
  outcome: SanitizeOutcome | null = null;
  readonly #lu: LogicalUnit;
  #suspend = false;
  #finished: Promise<SanitizeOutcome> | null = null;

  constructor(lu: LogicalUnit, plan: SanitizePlan, waiter: ScsiCommand | null) {
    this.#lu = lu;
    this.plan = plan;
    this.waiter = waiter;
    this.total = Math.max(1, lu.blockCount * plan.count);
  }

  /**
   * PROGRESS INDICATION (SPC-4 4.5.2.4.4): the fraction complete as a numerator over
   * 65536, never 65536 itself while the operation runs.
   */
  get progress(): number {
    return Math.min(0xffff, Math.floor((this.done * 0x10000) / this.total));
  }

  /**
   * Start (once); resolves with the outcome. `prepare` (writing the record) runs first,
   * once nothing else is in flight; if it fails, the operation fails.
   */
  start(prepare?: () => Promise<void>): Promise<SanitizeOutcome> {
    this.#finished ??= this.#run(prepare);
    return this.#finished;
  }

  /**
   * Stop after the chunk being written (the LU is closing: a power off for the
   * operation). The record stays, so the next open resumes it. Resolves once stopped.
   */
  async suspend(): Promise<void> {
    this.#suspend = true;
    if (this.#finished !== null) await this.#finished;
  }

  async #run(prepare: (() => Promise<void>) | undefined): Promise<SanitizeOutcome> {
    const lu = this.#lu;
    const sbc = lu.sbc;
    // SBC-4 4.11.2: the operation begins once the commands the device server was already
    // processing are done; nothing new is admitted meanwhile (the LU is NOT READY).
    while (sbc.busy) await yieldTurn();
    sbc.active++;
    let outcome: SanitizeOutcome;
    try {
      if (prepare !== undefined) await prepare();
      const complete = await this.#work();
      if (complete) {
        await new Promise<void>((resolve, reject) =>
          lu.store.flush((err) => (err ? reject(err) : resolve())),
        );
        outcome = 'done';
      } else {
        outcome = 'suspended';
      }
    } catch {
      outcome = this.#suspend ? 'suspended' : 'failed';
    } finally {
      sbc.active--;
    }
    this.outcome = outcome;
    if (outcome !== 'suspended') await sbc.sanitizeEnded(this, outcome === 'done');
    const w = this.waiter;
    this.waiter = null;
    if (w !== null) {
      if (outcome === 'done') w.status = ScsiStatus.GOOD;
      else if (outcome === 'failed') setCheckCondition(w, SenseReason.SANITIZE_COMMAND_FAILED);
      else setCheckCondition(w, SenseReason.LUN_NOT_READY_SANITIZE_IN_PROGRESS);
      w.finish();
    }
    return outcome;
  }

  /** The method itself; false when suspended before the end. */
  async #work(): Promise<boolean> {
    const lu = this.#lu;
    const onChunk = (n: number): boolean => {
      this.done += n;
      return !this.#suspend;
    };
    const plan = this.plan;
    if (plan.action === SanitizeAction.OVERWRITE) {
      const block = plan.block!;
      const inverted = Buffer.from(block.map((b) => ~b & 0xff));
      for (let pass = 0; pass < plan.count; pass++) {
        // INVERT = 1: the pattern is inverted between consecutive passes (SBC-4 5.30.2.2);
        // the last pass writes the pattern itself.
        const flip = plan.invert && (plan.count - 1 - pass) % 2 === 1;
        if (!(await fillBlocks(lu, 0, lu.blockCount, flip ? inverted : block, true, onChunk))) return false;
        if (pass + 1 < plan.count) await yieldTurn();
      }
      return true;
    }
    // BLOCK ERASE / CRYPTOGRAPHIC ERASE: zeros everywhere, then every LBA deallocated
    // (whole LU, so no granule is left partly mapped; allocation.ts).
    if (!(await fillBlocks(lu, 0, lu.blockCount, zeroBlock(lu), true, onChunk))) return false;
    lu.sbc.map?.markDeallocated(0, lu.blockCount);
    return true;
  }
}

/**
 * Where the sanitize record of a LU lives: LUs on persistent storage (files and block
 * devices) with a state directory only (see the file comment).
 */
export function sanitizeRecordPath(
  lu: LogicalUnit,
  stateDir: string | undefined,
  persistent: boolean,
): string | null {
  if (stateDir === undefined || !persistent) return null;
  return path.join(stateDir, 'sanitize', `${lu.name}.json`);
}

/** Write the record durably (temporary file, fsync, rename, fsync of the directory). */
export async function writeSanitizeRecord(
  file: string,
  lu: LogicalUnit,
  plan: SanitizePlan,
  state: SanitizeRecord['state'],
): Promise<void> {
  const body: SanitizeRecord = {
    version: 1,
    device: lu.name,
    state,
    action: plan.action,
    ause: plan.ause,
    count: plan.count,
    invert: plan.invert,
    pattern: plan.block === null ? null : plan.block.toString('hex'),
  };
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true });
  const tmp = `${file}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(`${JSON.stringify(body, null, 1)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  await syncDir(dir);
}

/** Remove the record (the operation completed without error, or the failure was exited). */
export async function removeSanitizeRecord(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  await syncDir(path.dirname(file));
}

/**
 * Read the record of `lu`: the plan and whether it was running or had failed; null when
 * there is none. A record that does not fit this LU (another block size, a damaged
 * file) is treated as a running OVERWRITE with zeros: the LU still ends up sanitized.
 */
export async function readSanitizeRecord(
  file: string,
  lu: LogicalUnit,
): Promise<{ plan: SanitizePlan; failed: boolean } | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const fallback: SanitizePlan = {
    action: SanitizeAction.OVERWRITE,
    ause: false,
    count: 1,
    invert: false,
    block: Buffer.alloc(lu.blockSize),
  };
  try {
    const r = JSON.parse(text) as Partial<SanitizeRecord>;
    const failed = r.state === 'failed';
    const block = typeof r.pattern === 'string' ? Buffer.from(r.pattern, 'hex') : null;
    const known =
      r.action === SanitizeAction.OVERWRITE ||
      r.action === SanitizeAction.BLOCK_ERASE ||
      r.action === SanitizeAction.CRYPTOGRAPHIC_ERASE;
    const count = typeof r.count === 'number' && r.count >= 1 && r.count <= 31 ? r.count : 0;
    const overwriteOk =
      r.action !== SanitizeAction.OVERWRITE || (block !== null && block.length === lu.blockSize);
    if (!known || count === 0 || !overwriteOk) return { plan: fallback, failed };
    return {
      plan: { action: r.action!, ause: r.ause === true, count, invert: r.invert === true, block },
      failed,
    };
  } catch {
    return { plan: fallback, failed: false };
  }
}

async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
