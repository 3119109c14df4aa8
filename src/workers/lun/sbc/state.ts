/**
 * SBC-4 state of one logical unit beyond its geometry: logical block provisioning,
 * the removable medium and PREVENT ALLOW MEDIUM REMOVAL, sanitize progress, and the
 * LU-wide exclusive gate that makes COMPARE AND WRITE, ORWRITE and WRITE ATOMIC atomic.
 *
 * Owned by the LUN worker thread that owns the LU, like the rest of LogicalUnit.
 *
 * Exclusive gate (SBC-4 5.3 COMPARE AND WRITE: the compare and the write are "an
 * uninterrupted series of actions" with respect to any other command that accesses the
 * same LBAs; SBC-4 4.29.2 atomic writes: no other command observes a partial write).
 * File I/O is asynchronous, so commands of one LU run concurrently; a per-range lock
 * would have to be consulted by every READ/WRITE. Instead, an exclusive command closes
 * the gate: commands that arrive after it are queued in order (executeCommand checks one
 * field, `gate`, on the hot path); the exclusive command starts once nothing else of the
 * LU is in flight (no backing-store request, no multi-step command counted in `active`),
 * runs alone, then reopens the gate and replays the queue. These commands are rare and
 * short (at most MAXIMUM COMPARE AND WRITE LENGTH / MAXIMUM ATOMIC TRANSFER LENGTH
 * blocks), so draining the LU for them costs little; correctness does not depend on
 * ranges being computed right. Waiting for in-flight work polls once per event-loop turn
 * (setImmediate) only while an exclusive command is waiting.
 *
 * In a cluster the same gate closes for another node's exclusive command on the LU (a
 * hold, `holdForPeer`): SBC-4 asks atomicity against every command, and a plain WRITE
 * through this node must not land between that node's compare and its write. The other
 * node takes the LU's cluster lock, then asks every node to hold, and runs only once each
 * has closed its gate and has nothing of the LU in flight (cluster-node.ts lockLu). The
 * hold ends with that node's release, or after `ttlMs` if the release never comes (the
 * node died: the lock in Redis expires as well).
 */
import type { BackingConfig, DeviceConfig } from '../../../shared/config-types.ts';
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import type { SenseDetail } from '../../../shared/scsi/sense.ts';
import { SenseReason, setCheckCondition, setFixedSenseProgress } from '../../../shared/scsi/sense.ts';
import { NotReadyBit } from '../command-policy.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import type { OpcodeMap } from '../opcode-map.ts';
import { AllocationMap } from './allocation.ts';
import { yieldTurn } from './bulk.ts';
import type { SanitizePlan } from './sanitize-operation.ts';
import {
  SanitizeOperation,
  readSanitizeRecord,
  removeSanitizeRecord,
  sanitizeRecordPath,
  writeSanitizeRecord,
} from './sanitize-operation.ts';

/** Bytes one WRITE SAME or UNMAP may cover (see maxWriteSameBlocks). */
const MAX_BULK_BYTES = 1 << 30;
/** Upper bound of MAXIMUM UNMAP LBA COUNT (see SbcState). */
const MAX_UNMAP_BLOCKS = 1 << 20;

/** The gate's value while only other nodes hold the LU (see the file comment). */
const HELD = Object.freeze({ heldByPeer: true });

/** Sanitize state (SBC-4 4.11). */
export const SanitizeState = {
  IDLE: 0,
  IN_PROGRESS: 1,
  FAILED: 2,
} as const;
export type SanitizeState = (typeof SanitizeState)[keyof typeof SanitizeState];

type Executor = (lu: LogicalUnit, cmd: ScsiCommand) => void;

export class SbcState {
  readonly lu: LogicalUnit;
  /**
   * Thin provisioned (LBPME = 1, LBPRZ = 1, UNMAP and WRITE SAME UNMAP supported). A block
   * device is thin when it can deallocate (the store has `discard`) unless `thin: false`.
   */
  readonly thin: boolean;
  /** Removable medium (RMB = 1). */
  readonly removable: boolean;
  /** LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT (SBC-4 5.21.2). */
  readonly physicalExponent: number;
  /** Logical blocks per physical block (2^physicalExponent). */
  readonly blocksPerPhysical: number;
  // Block Limits (VPD B0h, SBC-4 6.6.4), enforced by the commands they limit.
  /** MAXIMUM WRITE SAME LENGTH: 1 GiB worth of blocks (one command, bounded time). */
  readonly maxWriteSameBlocks: number;
  /** MAXIMUM UNMAP LBA COUNT (per UNMAP command): as for WRITE SAME. */
  readonly maxUnmapBlocks: number;
  /** MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT. */
  readonly maxUnmapDescriptors = 256;
  /** MAXIMUM COMPARE AND WRITE LENGTH (8 bits): the data-out (2 x n blocks) must fit a transfer. */
  readonly maxCompareAndWriteBlocks: number;
  /** MAXIMUM ATOMIC TRANSFER LENGTH: <= MAXIMUM TRANSFER LENGTH; WRITE ATOMIC(16) has 16 bits. */
  readonly maxAtomicBlocks: number;

  /**
   * Allocation map of a thin LU (null: fully provisioned, or a thin block device, whose
   * deallocations the device itself tracks: GET LBA STATUS then reports every LBA mapped,
   * always a correct answer, and several cluster nodes never disagree). Set by open().
   */
  map: AllocationMap | null = null;
  /** Path of the persisted allocation map (file-backed thin LUs). */
  #mapPath: string | null = null;

  /** Medium present (always true for a non-removable LU). */
  mediumPresent = true;
  /**
   * What medium-access commands report while there is no medium: MEDIUM NOT PRESENT
   * (3A/00), or for a CD-ROM drive the tray state (3A/01 tray closed, 3A/02 tray open,
   * MMC-6 4.1.6) or LOGICAL UNIT IS IN PROCESS OF BECOMING READY (04/01) while an image
   * is being changed (mmc/medium.ts).
   */
  noMediumReason: SenseDetail = SenseReason.MEDIUM_NOT_PRESENT;
  /**
   * START STOP UNIT with LOEJ (start-stop-unit.ts): load (true) or eject (false), asked
   * for by the I_T nexus `issuer`. A CD-ROM drive installs its own (mmc/medium.ts: tray,
   * events, NOT READY TO READY CHANGE); otherwise the medium simply comes and goes.
   */
  loadEject: (load: boolean, issuer: number) => void = (load) => this.setMediumPresent(load);
  /** I_T nexuses that hold a PREVENT (SBC-4 5.13: the prevent state is per I_T nexus). */
  readonly preventing = new Set<number>();
  sanitize: SanitizeState = SanitizeState.IDLE;
  /**
   * The sanitize operation in progress, or the one that failed (its AUSE decides how the
   * failure may be left, SBC-4 4.11.3); null when idle (sanitize-operation.ts).
   */
  sanitizeOp: SanitizeOperation | null = null;
  /** `<stateDir>/sanitize/<device>.json` (file-backed LUs with a stateDir), else null. */
  #sanitizeFile: string | null = null;
  /** A sanitize found running in the record at open, started by resumeSanitize(). */
  #resume: SanitizeOperation | null = null;
  /** Why medium-access commands fail now (null: ready). Hot path reads this one field. */
  notReady: SenseDetail | null = null;

  /**
   * Closed (non-null) while an exclusive command of this LU waits or runs, or another
   * node holds the LU (cluster); commands arriving then are queued. The hot path reads
   * only this field.
   */
  gate: object | null = null;
  /** The exclusive command of this node waiting or running. */
  #local: ScsiCommand | null = null;
  /** Other nodes' holds on the LU by id, each with the timer that ends it at its TTL. */
  readonly #holds = new Map<string, ReturnType<typeof setTimeout>>();
  /** Multi-step commands in progress (bulk WRITE SAME, UNMAP, SANITIZE, ...). */
  active = 0;
  #queue: ScsiCommand[] = [];
  #exec: Executor | null = null;

  constructor(dev: DeviceConfig, lu: LogicalUnit) {
    this.lu = lu;
    this.thin = dev.thin ?? (dev.backing.type === 'block' && lu.store.discard !== undefined);
    // A CD-ROM's disc is always removable (MMC-6 4.1: RMB = 1).
    this.removable = dev.removable === true || dev.backing.type === 'cdrom';
    // A block device's own physical block size unless one is configured (READ CAPACITY(16)
    // can express 2^0 to 2^15 logical blocks per physical block).
    const physical = Math.min(
      dev.physicalBlockSize ?? Math.max(lu.store.device?.physicalBlockSize ?? dev.blockSize, dev.blockSize),
      dev.blockSize * 2 ** 15,
    );
    this.blocksPerPhysical = Math.max(1, Math.floor(physical / dev.blockSize));
    this.physicalExponent = Math.log2(this.blocksPerPhysical);
    this.maxWriteSameBlocks = Math.floor(MAX_BULK_BYTES / dev.blockSize);
    // MAXIMUM UNMAP LBA COUNT: the bulk bound, but at most 2^20 blocks per command;
    // initiators (libiscsi's Block Limits check among them) treat larger values as
    // implausible, and an UNMAP that big is split by every real initiator anyway.
    this.maxUnmapBlocks = Math.min(this.maxWriteSameBlocks, MAX_UNMAP_BLOCKS);
    const maxXfer = lu.maxTransferBlocks > 0 ? lu.maxTransferBlocks : 0xffff;
    this.maxCompareAndWriteBlocks = Math.max(1, Math.min(255, Math.floor(maxXfer / 2)));
    this.maxAtomicBlocks = Math.min(0xffff, maxXfer);
  }

  /**
   * Load (or create) the allocation map of a thin LU, and read the sanitize record: a
   * sanitize that was running when the LU last closed resumes (resumeSanitize), one
   * that had failed leaves the LU in the failed state (SBC-4 4.11.2, 4.11.3).
   */
  async open(backing: BackingConfig, stateDir?: string): Promise<void> {
    this.#sanitizeFile = sanitizeRecordPath(this.lu, stateDir, backing.type === 'file' || backing.type === 'block');
    if (this.#sanitizeFile !== null) {
      const rec = await readSanitizeRecord(this.#sanitizeFile, this.lu);
      if (rec !== null) {
        const op = new SanitizeOperation(this.lu, rec.plan, null);
        this.sanitizeOp = op;
        if (rec.failed) {
          this.setSanitize(SanitizeState.FAILED);
        } else {
          this.#resume = op;
          this.setSanitize(SanitizeState.IN_PROGRESS);
        }
      }
    }
    if (!this.thin) return;
    // One bit per physical block, at least 4 KiB (see allocation.ts).
    const granule = Math.max(this.blocksPerPhysical, Math.ceil(4096 / this.lu.blockSize));
    if (backing.type === 'file') {
      this.#mapPath = `${backing.path}.map`;
      this.map = await AllocationMap.load(this.#mapPath, this.lu.blockCount, granule);
    } else if (backing.type === 'block') {
      // No map (see `map`): the device deallocates (backing/block-discard.ts).
      this.map = null;
    } else {
      // A fresh RAM disk is all zeros: every block starts deallocated.
      this.map = new AllocationMap(this.lu.blockCount, granule, false);
    }
  }

  /**
   * The LU grew (LogicalUnit.grow): extend the allocation map. New RAM blocks are zeros
   * never written (deallocated); new file blocks are reported mapped, since a file
   * longer than the old size may hold data there (mapped is always a safe answer).
   */
  grow(backing: BackingConfig): void {
    this.map?.grow(this.lu.blockCount, backing.type === 'file' || backing.type === 'block');
  }

  /**
   * Clean shutdown: a running sanitize stops after its current chunk (its record stays,
   * so it resumes at the next open), then the allocation map is persisted.
   */
  async close(): Promise<void> {
    await this.suspendSanitize();
    if (this.map !== null && this.#mapPath !== null) await this.map.save(this.#mapPath);
  }

  /**
   * Stop a running sanitize after its current chunk (shutdown); a SANITIZE command still
   * waiting for it ends with NOT READY, SANITIZE IN PROGRESS.
   */
  async suspendSanitize(): Promise<void> {
    const op = this.sanitizeOp;
    if (op !== null && this.sanitize === SanitizeState.IN_PROGRESS) await op.suspend();
  }

  // ---------------------------------------------------------------------------------
  // Sanitize (sanitize-operation.ts)

  /**
   * Begin a sanitize operation: the LU is NOT READY from now on; `waiter` (the SANITIZE
   * command with IMMED = 0, or null) finishes when the operation ends. The record is
   * written before the first block is, so a restart at any point resumes the operation.
   */
  startSanitize(plan: SanitizePlan, waiter: ScsiCommand | null): void {
    const op = new SanitizeOperation(this.lu, plan, waiter);
    this.sanitizeOp = op;
    this.setSanitize(SanitizeState.IN_PROGRESS);
    const file = this.#sanitizeFile;
    void op.start(file === null ? undefined : () => writeSanitizeRecord(file, this.lu, plan, 'running'));
  }

  /** Start the sanitize found running at open (LogicalUnit.open, once the LU is whole). */
  resumeSanitize(): void {
    const op = this.#resume;
    this.#resume = null;
    if (op !== null) void op.start();
  }

  /**
   * The operation ended (not suspended). Success: the record goes first, then the LU is
   * ready, so a restart in between repeats the sanitize rather than wiping writes made
   * after it. Failure: the failed state, recorded (SBC-4 4.11.3).
   */
  async sanitizeEnded(op: SanitizeOperation, ok: boolean): Promise<void> {
    if (this.sanitizeOp !== op) return;
    const file = this.#sanitizeFile;
    if (ok) {
      try {
        if (file !== null) await removeSanitizeRecord(file);
        this.sanitizeOp = null;
        this.setSanitize(SanitizeState.IDLE);
        return;
      } catch {
        // The record could not be removed: report the operation as failed below.
      }
    }
    this.setSanitize(SanitizeState.FAILED);
    if (file !== null) await writeSanitizeRecord(file, this.lu, op.plan, 'failed').catch(() => undefined);
  }

  /**
   * EXIT FAILURE MODE accepted (sanitize.ts checked AUSE): leave the failed state.
   * Resolves once the record is gone.
   */
  async exitSanitizeFailure(): Promise<void> {
    if (this.sanitize !== SanitizeState.FAILED) return;
    if (this.#sanitizeFile !== null) await removeSanitizeRecord(this.#sanitizeFile);
    this.sanitizeOp = null;
    this.setSanitize(SanitizeState.IDLE);
  }

  /** PROGRESS INDICATION of the sanitize in progress (0-65535), or -1 when none runs. */
  sanitizeProgress(): number {
    const op = this.sanitizeOp;
    return this.sanitize === SanitizeState.IN_PROGRESS && op !== null ? op.progress : -1;
  }

  /**
   * A task management function aborted `cmd`. When it is the SANITIZE command waiting
   * for the operation, it ends now (without status: it is aborted) and the operation
   * carries on (SBC-4 4.11.2). Returns true when it did.
   */
  releaseSanitizeWaiter(cmd: ScsiCommand): boolean {
    const op = this.sanitizeOp;
    if (op === null || op.waiter !== cmd) return false;
    op.waiter = null;
    cmd.finish();
    return true;
  }

  // ---------------------------------------------------------------------------------
  // Readiness

  /**
   * Complete `cmd` with the not-ready sense when the current state refuses it;
   * returns true when it did (the caller finishes the command). `served` is the
   * registry's compiled `notReady` table (NotReadyBit sets; ../opcode-registry.ts):
   * which commands need no medium (SBC-4 4.34), which are served while a sanitize runs
   * (SBC-4 4.11.2: every other command ends with NOT READY, LOGICAL UNIT NOT READY,
   * SANITIZE IN PROGRESS; REQUEST SENSE then reports that same condition with the
   * progress indication, spc/unit-status.ts) and after one failed (SBC-4 4.11.4).
   */
  rejectNotReady(cmd: ScsiCommand, served: OpcodeMap): boolean {
    const reason = this.notReady!;
    let bit: number;
    if (this.sanitize === SanitizeState.IN_PROGRESS) bit = NotReadyBit.SANITIZING;
    else if (this.sanitize === SanitizeState.FAILED) bit = NotReadyBit.SANITIZE_FAILED;
    else bit = NotReadyBit.NO_MEDIUM;
    if ((served.get(cmd.cdb) & bit) !== 0) return false;
    setCheckCondition(cmd, reason);
    // SPC-4 4.5.2.4.4: NOT READY for an operation in progress may carry its progress.
    if (this.sanitize === SanitizeState.IN_PROGRESS && this.sanitizeOp !== null) {
      setFixedSenseProgress(cmd.sense, this.sanitizeOp.progress);
    }
    return true;
  }

  /** The medium comes or goes; `reason`: what is reported while it is absent. */
  setMediumPresent(present: boolean, reason: SenseDetail = SenseReason.MEDIUM_NOT_PRESENT): void {
    this.mediumPresent = present;
    this.noMediumReason = reason;
    this.#update();
  }

  setSanitize(state: SanitizeState): void {
    this.sanitize = state;
    this.#update();
  }

  #update(): void {
    if (this.sanitize === SanitizeState.IN_PROGRESS) this.notReady = SenseReason.LUN_NOT_READY_SANITIZE_IN_PROGRESS;
    else if (this.sanitize === SanitizeState.FAILED) this.notReady = SenseReason.SANITIZE_COMMAND_FAILED;
    else if (!this.mediumPresent) this.notReady = this.noMediumReason;
    else this.notReady = null;
    // READs now meet another answer: no session worker may read around it.
    this.lu.invalidateInline();
  }

  // ---------------------------------------------------------------------------------
  // Provisioning

  /** A write landed on [lba, +blocks): mark it mapped (thin LUs; allocation free). */
  noteWritten(lba: number, blocks: number): void {
    if (this.map !== null) this.map.markMapped(lba, blocks);
  }

  // ---------------------------------------------------------------------------------
  // Exclusive gate (see the file comment)

  /** Queue `cmd` behind the exclusive command; `exec` re-executes it later. */
  defer(cmd: ScsiCommand, exec: Executor): void {
    this.#exec = exec;
    this.#queue.push(cmd);
  }

  /**
   * Run `body` for `cmd` with no other command of this LU in flight. `body` sets the
   * command's outputs; the gate then reopens, `cmd` finishes and the queue is replayed.
   */
  runExclusive(cmd: ScsiCommand, body: () => Promise<void>): void {
    this.#local = cmd;
    this.gate = cmd;
    // Closing the gate waits out inline commands in progress, and stops new ones.
    this.lu.invalidateInline();
    const start = (): void => {
      if (this.busy) {
        setImmediate(start);
        return;
      }
      body()
        .catch(() => setCheckCondition(cmd, SenseReason.INTERNAL_TARGET_FAILURE))
        .finally(() => {
          this.#local = null;
          this.#reopen();
          cmd.finish();
          this.#replay();
        });
    };
    start();
  }

  /**
   * Another node's exclusive command (see the file comment): close the gate and resolve
   * once nothing of this LU is in flight here, or at once if the hold ended meanwhile.
   * A hold lasts until releasePeer(id), at most `ttlMs`.
   */
  holdForPeer(id: string, ttlMs: number): Promise<void> {
    if (!this.#holds.has(id)) {
      const timer = setTimeout(() => this.releasePeer(id), ttlMs);
      timer.unref();
      this.#holds.set(id, timer);
      if (this.gate === null) this.gate = HELD;
      this.lu.invalidateInline();
    }
    return new Promise((resolve) => {
      const drained = (): void => {
        if (this.#holds.has(id) && this.busy) setImmediate(drained);
        else resolve();
      };
      drained();
    });
  }

  /** Another node's exclusive command is done: its hold ends (unknown ids are ignored). */
  releasePeer(id: string): void {
    const timer = this.#holds.get(id);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.#holds.delete(id);
    if (this.#local === null) {
      this.#reopen();
      this.#replay();
    }
  }

  /**
   * One step of a command that yields between its steps without being a multi-step
   * command of this LU (an EXTENDED COPY chunk written here): it waits while the gate is
   * closed and counts as in flight while it runs, so an exclusive command, here or on
   * another node, never runs in the middle of it, nor it in the middle of one.
   */
  async step<T>(body: () => Promise<T>): Promise<T> {
    while (this.gate !== null) await yieldTurn();
    this.active++;
    try {
      return await body();
    } finally {
      this.active--;
    }
  }

  /** Other nodes' holds in force (tests, unit info). */
  get peerHolds(): number {
    return this.#holds.size;
  }

  /** Something of this LU is in flight: backing-store requests or multi-step commands. */
  get busy(): boolean {
    return this.lu.store.inFlight > 0 || this.active > 0;
  }

  /** The gate after the local exclusive command or a hold ended. */
  #reopen(): void {
    this.gate = this.#local ?? (this.#holds.size > 0 ? HELD : null);
  }

  #replay(): void {
    const exec = this.#exec;
    if (exec === null) return;
    while (this.gate === null && this.#queue.length > 0) exec(this.lu, this.#queue.shift()!);
  }
}
