/**
 * The transport-neutral SCSI command that crosses from a session worker to a LUN worker.
 *
 * Nothing iSCSI-specific lives here (no ITT, no R2T offsets): a fabric fills the CDB,
 * the expected transfer length and the data-out bytes; the target core fills status,
 * sense and data-in. Objects of this shape are pooled by the LUN worker (one per ring
 * slot) and reset in place, so the hot path allocates none.
 */
export interface ScsiCommand {
  /** CDB bytes: a view of at least `cdbLength` bytes (a fixed 32-byte area in the ring). */
  readonly cdb: Buffer;
  cdbLength: number;
  /**
   * The data buffer: a view into the session worker's SAB slab, exactly
   * `expectedLength` bytes long. Data-out bytes are at data[0, dataOutLength);
   * a data-in command writes its payload at data[0, min(dataInLength, data.length)).
   */
  data: Buffer;
  /** Expected data transfer length the initiator announced (iSCSI EDTL). */
  expectedLength: number;
  /** Bytes of write data actually present in `data` (<= expectedLength). */
  dataOutLength: number;
  /**
   * Output: bytes the command transfers to the initiator (SPC: the lesser of the
   * allocation length and the response length; SBC reads: transfer length x block size).
   * May exceed data.length: the fabric then reports a residual overflow and sends
   * only data.length bytes.
   */
  dataInLength: number;
  /**
   * Output for data-out commands: bytes of data-out the CDB calls for (SBC: transfer
   * length x logical block size). The fabric reports a residual overflow when it is
   * larger than EDTL and an underflow when smaller. Left 0 when not applicable.
   */
  dataOutWanted: number;
  /** Output: SAM status (see ScsiStatus). */
  status: number;
  /** Output: sense data area (preallocated, 252 bytes); valid for senseLength bytes. */
  readonly sense: Buffer;
  senseLength: number;
  /** LUN as the initiator addressed it (already decoded from the 8-byte LUN field). */
  lun: number;
  /** I_T nexus id, unique in the target; used by UA/reservation state. */
  nexus: number;
  /** SAM task attribute (TaskAttribute). */
  attribute: number;
  /**
   * Continuation for backing-store I/O: an executor sets `onIo` and passes
   * `ioTrampoline` (bound once when the object is created) as the store callback,
   * so no closure is allocated per I/O.
   */
  onIo: IoContinuation | null;
  /**
   * A READ's or WRITE's inline I/O epoch when it passed its checks (0: none; the LUN
   * worker's inline-grant.ts): it earns a grant only if the epoch has not moved since.
   */
  inlineEpoch: number;
  readonly ioTrampoline: (err: NodeJS.ErrnoException | null) => void;
  /** Hand the finished command back to the LUN worker (pushes the completion). */
  finish(): void;
}

export type IoContinuation = (cmd: ScsiCommand, err: NodeJS.ErrnoException | null) => void;

const NO_DATA = Buffer.alloc(0);

/**
 * The per-command fields of a ScsiCommand with their reset values, for the classes that
 * implement it (the LUN worker's pooled tasks, the session worker's local command): the
 * buffers are allocated once per object, never per command. Subclasses add the I/O
 * trampoline and finish().
 */
export abstract class ScsiCommandFields {
  readonly cdb = Buffer.alloc(32);
  cdbLength = 0;
  data: Buffer = NO_DATA;
  expectedLength = 0;
  dataOutLength = 0;
  dataInLength = 0;
  dataOutWanted = 0;
  status = 0;
  readonly sense = Buffer.alloc(252);
  senseLength = 0;
  lun = 0;
  nexus = 0;
  attribute = 0;
  onIo: IoContinuation | null = null;
  inlineEpoch = 0;
}

/** SAM-5 5.3 status codes. */
export const ScsiStatus = {
  GOOD: 0x00,
  CHECK_CONDITION: 0x02,
  CONDITION_MET: 0x04,
  BUSY: 0x08,
  RESERVATION_CONFLICT: 0x18,
  TASK_SET_FULL: 0x28,
  ACA_ACTIVE: 0x30,
  TASK_ABORTED: 0x40,
} as const;

/** SAM-5 8.6 task attributes, numbered as in the iSCSI SCSI Command PDU ATTR field. */
export const TaskAttribute = {
  UNTAGGED: 0,
  SIMPLE: 1,
  ORDERED: 2,
  HEAD_OF_QUEUE: 3,
  ACA: 4,
} as const;
