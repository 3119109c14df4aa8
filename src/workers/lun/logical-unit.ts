/**
 * One logical unit as a LUN worker holds it: a direct-access block device (SBC-4) or a
 * CD-ROM drive (MMC-6, device-type.ts), with its backing store, geometry, identity, the
 * command set of its type and the state the command executors read.
 *
 * Owned by exactly one LUN worker thread; nothing here is shared.
 */
import { InlineKind, type InlineGrants } from '../../shared/ring/inline-grants.ts';
import { DEFAULT_QUEUE_DEPTH, TaskSet } from './task-set.ts';
import { executeCommand } from './execute.ts';
import type { ScsiCommand } from '../../shared/scsi/command.ts';
import type { NexusDirectory } from './nexus.ts';
import type { DeviceConfig } from '../../shared/config-types.ts';
import type { BackingStore } from './backing/store.ts';
import { openBackingStore, type StoreOptions } from './backing/open-store.ts';
import type { IoErrorReport } from './backing/io-errors.ts';
import { IoErrorLog } from './backing/io-errors.ts';
import { DeviceType, deviceTypeOf } from './device-type.ts';
import type { CommandSet } from './opcode-registry.ts';
import { commandSetFor } from './opcode-registry.ts';
import { MmcMedium } from './mmc/medium.ts';
import type { IoContinuations } from './sbc/io-completion.ts';
import { ioContinuations } from './sbc/io-completion.ts';
import { SanitizeState, SbcState } from './sbc/state.ts';
import type { ModeState } from './spc/mode-pages.ts';
import { openModeState } from './spc/mode-pages.ts';
import { UnitAttentionState, establishAll } from './ua/unit-attention.ts';
import { SenseReason } from '../../shared/scsi/sense.ts';
import { standaloneAlua, type LuAlua } from './alua/port-groups.ts';
import { PrEngine } from './pr/engine.ts';
import { SPINDLE_IEEE_COMPANY_ID, identityDigest, naa6Designator } from '../../shared/scsi/lu-identity.ts';

// Re-exported for the LU's users (identity is computed in shared/: the supervisor needs it too).
export { SPINDLE_IEEE_COMPANY_ID, identityDigest, naa6Designator };
import type { ClusterState } from '../../shared/state/cluster-state.ts';
import type { ModePageImage } from '../../shared/state/mode-image.ts';
import { CopyManagerState, registerCopyTarget, unregisterCopyTarget } from './xcopy/copy-state.ts';

/** PRODUCT REVISION LEVEL in standard INQUIRY data (4 ASCII characters). */
export const SPINDLE_REVISION = '0001';

/** Bytes of the per-LU scratch buffer for SPC responses (INQUIRY, MODE SENSE, RSOC...). */
const SCRATCH_BYTES = 8192;

export interface LogicalUnitIdentity {
  /** Cluster id: identifiers derive from it and the device name, so every node agrees. */
  readonly clusterId: string;
  /**
   * Largest transfer the fabric accepts for one command, in bytes (IscsiTuning
   * .maxTransferLength). Reported as MAXIMUM TRANSFER LENGTH in the Block Limits VPD
   * page; absent or 0: no limit reported.
   */
  readonly maxTransferBytes?: number;
  /**
   * Local state directory (config `stateDir`): saved mode pages persist under
   * <stateDir>/mode-pages/ (spc/mode-pages.ts). Absent: saved values not implemented.
   */
  readonly stateDir?: string;
}

/**
 * Where a LU reports what is not SCSI state: given to LogicalUnit.open by whoever hosts
 * the LU (the LUN worker wires its logger; unit tests print to the console).
 */
export interface LuEnvironment {
  /**
   * A bug inside an executor (an exception, a rejected promise that is not an I/O error).
   * The command itself completes with HARDWARE ERROR, INTERNAL TARGET FAILURE.
   */
  readonly reportInternalError: (err: unknown, cmd: ScsiCommand) => void;
  /**
   * Where the LU's device-wide state (persistent reservations) is held. In a cluster: the
   * Redis-backed state the supervisor runs, reached over the control channel; absent: an
   * embedded store persisting under stateDir (one node).
   */
  readonly clusterState?: ClusterState;
  /**
   * In a cluster: take the LU's cluster-wide lock for an LU-wide exclusive command
   * (COMPARE AND WRITE, ORWRITE, WRITE ATOMIC), so it is atomic against the same commands
   * on other nodes too; resolves with the release. Absent: one node, the LU's own gate is
   * enough.
   */
  readonly atomicLock?: (lu: string) => Promise<() => Promise<void>>;
  /**
   * In a cluster: carry explicit asymmetric access states (SET TARGET PORT GROUPS) to every
   * node; resolves once they hold cluster-wide. Absent: they hold on this node only.
   */
  readonly setAluaStates?: (states: readonly { group: number; state: number }[]) => Promise<void>;
  /** What the backing store is opened with (a RAM store's kept contents, and where to keep them). */
  readonly store?: StoreOptions;
  /** In a cluster: MODE SELECT changed these pages; carry them to every node. */
  readonly modesChanged?: (lu: string, pages: readonly ModePageImage[]) => void;
  /**
   * Backing-store errors, already thinned out to one line per burst
   * (backing/io-errors.ts). Absent: not logged (unit tests).
   */
  readonly reportIoError?: (report: IoErrorReport) => void;
}

/** Directory used until the LUN worker installs its own (unit tests, tools). */
const NO_NEXUSES: NexusDirectory = { get: () => undefined };

export class LogicalUnit {
  readonly name: string;
  /** The device as configured. */
  readonly device: DeviceConfig;
  /** PERIPHERAL DEVICE TYPE: a disk or a CD-ROM (device-type.ts). */
  readonly deviceType: DeviceType;
  /** The command set of the device type: dispatch and every pipeline table (opcode-registry.ts). */
  readonly commands: CommandSet;
  /**
   * The bytes behind the LU. Replaced only by a CD-ROM medium change (mmc/medium.ts),
   * while the LU is not ready and nothing is in flight.
   */
  store: BackingStore;
  /** The configured backing (grow() needs its kind). */
  readonly backing: DeviceConfig['backing'];
  /** Logical block size in bytes (512 or 4096). */
  readonly blockSize: number;
  /** log2(blockSize). */
  readonly blockShift: number;
  /**
   * Number of logical blocks (capacity); the last LBA is blockCount - 1. Grows with
   * grow() (runtime resize); never shrinks.
   */
  blockCount: number;
  /** Configured read-only (`readOnly: true`), or a CD-ROM. */
  readonly mediumReadOnly: boolean;
  /** SWP in the control mode page (SPC-4 7.5.8), set by MODE SELECT. */
  softwareWriteProtect = false;
  /** Writes fail with DATA PROTECT: configured read-only or SWP set (SBC-4 4.11). */
  get readOnly(): boolean {
    return this.mediumReadOnly || this.softwareWriteProtect;
  }
  /** Write cache enabled (write-back): WCE in the caching mode page (SBC-4 6.5.5). */
  writeCacheEnabled: boolean;
  /** T10 VENDOR IDENTIFICATION, 8 bytes, space padded (SPC-4 4.4.1 ASCII). */
  readonly vendor: string;
  /** PRODUCT IDENTIFICATION, 16 bytes, space padded. */
  readonly product: string;
  /** PRODUCT REVISION LEVEL, 4 bytes. */
  readonly revision: string;
  /** PRODUCT SERIAL NUMBER for VPD page 80h (ASCII). */
  readonly serial: string;
  /** 16-byte NAA IEEE Registered Extended designator (NAA 6h) for VPD page 83h. */
  readonly naa: Buffer;
  /** MAXIMUM TRANSFER LENGTH in logical blocks for the Block Limits page; 0 = none. */
  readonly maxTransferBlocks: number;
  /**
   * Scratch for building SPC responses. Those executors run to completion synchronously,
   * so one buffer per LU suffices.
   */
  readonly scratch: Buffer;
  /**
   * SBC-4 state beyond geometry (sbc/state.ts): provisioning (thin, allocation map),
   * removable medium and PREVENT ALLOW, sanitize progress, the LU-wide exclusive gate of
   * COMPARE AND WRITE / WRITE ATOMIC.
   */
  readonly sbc: SbcState;
  /** Mode parameters: current and saved page images (spc/mode-pages.ts); set by open(). */
  modes!: ModeState;
  /** Pending unit attentions per I_T nexus (ua/unit-attention.ts). */
  readonly ua = new UnitAttentionState();
  /**
   * Commands accepted and not yet completed, across all nexuses, with task attribute
   * ordering and the queue depth (task-set.ts; config `queueDepth`).
   */
  readonly taskSet: TaskSet;
  /**
   * TAS in the control mode page (SPC-4 7.5.8), set by MODE SELECT: commands aborted by
   * another nexus's task management complete with TASK ABORTED status instead of none
   * (task-management.ts).
   */
  taskAbortedStatus = false;
  /** Resolves ScsiCommand.nexus to the I_T nexus identity; set by the LUN worker. */
  nexuses: NexusDirectory = NO_NEXUSES;
  /**
   * Session workers may serve READs and WRITEs of this unit themselves (a RAM disk or a
   * buffered file, `file`; shared/ring/inline-grants.ts): its grant table and slot
   * there. Set by the LUN worker; null otherwise.
   */
  inline: { readonly grants: InlineGrants; readonly index: number; readonly file: boolean } | null = null;

  /**
   * Void the unit's inline I/O grants (inline-grants.ts), returning once no inline command
   * under them is still copying. Called before anything a READ or WRITE meets changes:
   * unit attentions, reservations, readiness, the exclusive gate, task attributes,
   * capacity.
   */
  invalidateInline(): void {
    const d = this.inline;
    if (d !== null) d.grants.invalidate(d.index);
  }

  /**
   * Let session workers serve this unit inline (the LUN worker, for a RAM disk or a
   * buffered file): its slot in `grants` gets the unit's kind and capacity, then the
   * first invalidation, which also voids whatever a predecessor granted for the slot.
   */
  attachInline(grants: InlineGrants, index: number, kind: InlineKind): void {
    this.inline = { grants, index, file: kind === InlineKind.FILE };
    grants.setKind(index, kind);
    this.#publishGeometry();
    this.invalidateInline();
  }

  /** The capacity inline commands are checked against: at attach and after a grow, before the invalidation that makes it current. */
  #publishGeometry(): void {
    const d = this.inline;
    if (d !== null) d.grants.setGeometry(d.index, this.blockShift, this.blockCount);
  }
  /**
   * ALUA (SPC-4 5.16): the worker's target port group table and the groups exporting
   * this LU (alua/port-groups.ts); the LUN worker attaches it, a lone LU has one group.
   */
  alua: LuAlua = standaloneAlua();
  /** EXTENDED COPY: copies in progress and held results (xcopy/copy-state.ts). */
  readonly copies = new CopyManagerState();
  /** Persistent and SPC-2 reservations: the local copy of ClusterState (pr/engine.ts); set by open(). */
  pr!: PrEngine;
  /** What the host of this LU gave it (LuEnvironment). */
  readonly env: LuEnvironment;
  /** Backing-store errors, logged once per burst (backing/io-errors.ts). */
  readonly ioErrors: IoErrorLog;
  /** The I/O continuations of READ, WRITE, SYNCHRONIZE CACHE (sbc/io-completion.ts). */
  readonly io: IoContinuations;
  /** The CD-ROM drive's tray, disc and media events (null for a disk). */
  readonly mmc: MmcMedium | null;

  // State later issues add lives here, owned by this LU: pending unit attentions per
  // I_T nexus, the persistent reservation cache, current mode page values (once MODE
  // SELECT exists), ALUA access state.

  private constructor(dev: DeviceConfig, store: BackingStore, ident: LogicalUnitIdentity, env: LuEnvironment) {
    this.name = dev.name;
    this.device = dev;
    this.deviceType = deviceTypeOf(dev.backing);
    this.commands = commandSetFor(this.deviceType);
    this.env = env;
    this.store = store;
    this.backing = dev.backing;
    this.blockSize = dev.blockSize;
    this.blockShift = Math.log2(dev.blockSize);
    this.blockCount = Math.floor(store.sizeBytes / dev.blockSize);
    this.mediumReadOnly = dev.readOnly || this.deviceType === DeviceType.CDROM;
    const report = env.reportIoError;
    this.ioErrors = new IoErrorLog(dev.name, report ?? (() => undefined));
    this.io = ioContinuations(this);
    this.writeCacheEnabled = dev.writeCache === 'writeback';
    this.vendor = asciiField(dev.vendor, 8);
    this.product = asciiField(dev.product, 16);
    this.revision = asciiField(SPINDLE_REVISION, 4);
    const digest = identityDigest(ident.clusterId, dev.name);
    this.naa = naa6Designator(SPINDLE_IEEE_COMPANY_ID, digest);
    this.serial = dev.serial ?? digest.subarray(16, 24).toString('hex');
    const maxBytes = ident.maxTransferBytes ?? 0;
    this.maxTransferBlocks = maxBytes > 0 ? Math.min(Math.floor(maxBytes / dev.blockSize), 0xffffffff) : 0;
    this.scratch = Buffer.alloc(SCRATCH_BYTES);
    this.sbc = new SbcState(dev, this);
    this.mmc = this.deviceType === DeviceType.CDROM ? new MmcMedium(this) : null;
    // The task set runs the commands it enables later through the same pipeline.
    this.taskSet = new TaskSet(this, executeCommand, dev.queueDepth ?? DEFAULT_QUEUE_DEPTH);
  }

  static async open(dev: DeviceConfig, ident: LogicalUnitIdentity, env: LuEnvironment): Promise<LogicalUnit> {
    const cdrom = dev.backing.type === 'cdrom';
    if (cdrom ? dev.blockSize !== 2048 : dev.blockSize !== 512 && dev.blockSize !== 4096)
      throw new RangeError(`unsupported block size ${dev.blockSize}${cdrom ? ' (a CD-ROM has 2048-byte blocks)' : ''}`);
    const store = await openBackingStore(dev, env.store);
    if (dev.thin === true && dev.backing.type === 'block' && store.discard === undefined) {
      await store.close();
      throw new Error(
        `${dev.name}: thin provisioning on block device ${dev.backing.path} needs discard and write-zeroes support, which the device does not report (queue/discard_max_bytes, queue/write_zeroes_max_bytes): set thin: false`,
      );
    }
    const lu = new LogicalUnit(dev, store, ident, env);
    await lu.sbc.open(dev.backing, ident.stateDir);
    lu.modes = await openModeState(lu, ident.stateDir);
    lu.pr = await PrEngine.open(lu, ident.stateDir, env.clusterState);
    // Only disks are copy targets of EXTENDED COPY (block to block, xcopy/).
    if (lu.deviceType === DeviceType.DISK) registerCopyTarget(lu);
    lu.mmc?.opened();
    // A sanitize interrupted by the last shutdown or crash carries on (SBC-4 4.11.2).
    lu.sbc.resumeSanitize();
    return lu;
  }

  /**
   * Runtime resize (configuration reload) to `sizeBytes`, a multiple of the block size
   * no smaller than today's. Every I_T nexus learns it from CAPACITY DATA HAS CHANGED
   * (2A/09; SBC-4, READ CAPACITY (10) and (16) parameter data: whenever it changes, the
   * device server establishes a unit attention), so an initiator re-reads the
   * capacity before addressing the new blocks.
   * Commands in flight were checked against the old capacity, which is still valid.
   */
  async grow(sizeBytes: number): Promise<void> {
    const blocks = Math.floor(sizeBytes / this.blockSize);
    if (blocks === this.blockCount) return;
    if (blocks < this.blockCount) throw new RangeError(`${this.name}: a logical unit cannot shrink while serving`);
    // A sanitize covers the capacity it started with (SBC-4 4.11): growing under it would
    // leave unsanitized blocks behind a "sanitized" LU.
    if (this.sbc.sanitize !== SanitizeState.IDLE) throw new Error(`${this.name}: a sanitize is in progress or failed; grow it afterwards`);
    // A RAM disk's memory is copied and replaced: no inline command may copy into the old
    // one after its contents were taken, so every grant is void before, and none is given
    // (inline null) until the new memory and capacity are in place.
    this.invalidateInline();
    const inline = this.inline;
    this.inline = null;
    try {
      await this.store.grow(blocks * this.blockSize);
      this.blockCount = blocks;
    } finally {
      this.inline = inline;
      this.#publishGeometry();
      this.invalidateInline();
    }
    this.sbc.grow(this.backing);
    establishAll(this, SenseReason.CAPACITY_DATA_HAS_CHANGED);
  }

  /** Byte offset of an LBA. */
  offsetOf(lba: number): number {
    return lba * this.blockSize;
  }

  async close(): Promise<void> {
    // No inline command may use the store (a file's descriptor) once it is closed.
    this.invalidateInline();
    this.inline?.grants.setKind(this.inline.index, InlineKind.NONE);
    this.inline = null;
    unregisterCopyTarget(this);
    this.ioErrors.close();
    await this.pr?.close();
    await this.sbc.close();
    await this.store.close();
  }
}

/**
 * Left-aligned, space-padded ASCII field (SPC-4 4.4.1): characters outside 20h-7Eh are
 * replaced by '_', longer values truncated.
 */
export function asciiField(value: string, width: number): string {
  let out = '';
  for (let i = 0; i < value.length && out.length < width; i++) {
    const c = value.charCodeAt(i);
    out += c >= 0x20 && c <= 0x7e ? value[i] : '_';
  }
  return out.padEnd(width, ' ');
}
