/**
 * Binary descriptors carried on the SAB rings between session workers and LUN workers.
 * Fixed offsets, little-endian; read and written in place through the ring's DataView
 * (no objects are built per command).
 *
 * Command descriptor (session worker -> LUN worker), 64 bytes:
 *
 *   0  u8   kind          DescKind
 *   1  u8   attribute     SAM task attribute
 *   2  u8   cdbLength
 *   3  u8   flags         bit0 data-in (read), bit1 data-out (write)
 *   4  u32  tag           session-worker task id; echoed in the completion
 *   8  u32  nexus         I_T nexus id
 *   12 u32  luIndex       logical unit index on the receiving LUN worker
 *   16 u32  slabOffset    data buffer offset in the session worker's slab
 *   20 u32  expectedLength  iSCSI EDTL (data buffer length)
 *   24 u32  dataOutLength   write bytes present in the buffer
 *   28 u32  lun           LUN number as addressed by the initiator
 *   32 u8[32] cdb
 *
 * Completion descriptor (LUN worker -> session worker), 104 bytes:
 *
 *   0  u8   kind
 *   1  u8   status        SAM status
 *   2  u16  senseLength   (<= 80)
 *   4  u32  tag
 *   8  u32  dataInLength  bytes the command transferred (may exceed EDTL: overflow)
 *   12 u32  dataOutWanted data-out bytes the CDB called for (write residuals)
 *   16 u8[80] sense
 *   96 i32  grant         a READ's or WRITE's inline I/O grant for its nexus, unit and
 *                         direction, 0 for none
 *                         (shared/ring/inline-grants.ts)
 *   100 u32 reserved
 */
export const CMD_DESC_BYTES = 64;
export const CPL_DESC_BYTES = 104;
export const CPL_SENSE_MAX = 80;

export const DescKind = {
  /** A SCSI command for a logical unit. */
  COMMAND: 1,
  /** Completion of a SCSI command (or acknowledgement of a control descriptor). */
  COMPLETION: 2,
  /**
   * The session behind `nexus` has ended (I_T nexus loss, SAM-5 6.3.4). No command of
   * it follows on this ring; the LUN worker drops state tied to the handle and
   * acknowledges with a COMPLETION carrying the same tag.
   */
  NEXUS_LOSS: 3,
  /**
   * A task management function that aborts commands at the logical unit (ABORT TASK,
   * ABORT TASK SET, CLEAR TASK SET, LOGICAL UNIT RESET, target resets): ATTRIBUTE
   * carries the RFC 7143 function code, LU_INDEX the unit (0xffffffff: every unit of the
   * worker), NEXUS the issuer, and for ABORT TASK the first four CDB bytes (u32 little
   * endian) the tag of the command to abort. Acknowledged with a COMPLETION once the
   * unit's affected commands have finished; its STATUS is TMF_NOT_EVERYWHERE when a
   * cluster-wide function could not reach the other nodes.
   */
  TMF: 4,
  /** Completion of a command aborted by a task management function: send no status. */
  COMPLETION_ABORTED: 5,
  /**
   * A unit attention event for the I_T nexus `nexus` at the unit LU_INDEX; ATTRIBUTE
   * carries a UaEvent. Ordered with the session's commands on the ring, so the event
   * takes effect exactly between the commands sent before and after it. Acknowledged
   * with a COMPLETION carrying the same tag.
   */
  UNIT_ATTENTION: 6,
} as const;

/** STATUS of a TMF acknowledgement: done here, but not on every node of the cluster. */
export const TMF_NOT_EVERYWHERE = 1;

/** ATTRIBUTE of a UNIT_ATTENTION descriptor. */
export const UaEvent = {
  /** The nexus's LUN inventory changed: establish REPORTED LUNS DATA HAS CHANGED (3F/0E). */
  REPORTED_LUNS_CHANGED: 1,
  /** The nexus ran REPORT LUNS (answered on the session worker): clear 3F/0E (SPC-4 6.33). */
  REPORTED_LUNS_SEEN: 2,
} as const;

export const DescFlags = {
  DATA_IN: 1,
  DATA_OUT: 2,
} as const;

export const Cmd = {
  KIND: 0,
  ATTRIBUTE: 1,
  CDB_LENGTH: 2,
  FLAGS: 3,
  TAG: 4,
  NEXUS: 8,
  LU_INDEX: 12,
  SLAB_OFFSET: 16,
  EXPECTED_LENGTH: 20,
  DATA_OUT_LENGTH: 24,
  LUN: 28,
  CDB: 32,
  CDB_MAX: 32,
} as const;

export const Cpl = {
  KIND: 0,
  STATUS: 1,
  SENSE_LENGTH: 2,
  TAG: 4,
  DATA_IN_LENGTH: 8,
  DATA_OUT_WANTED: 12,
  SENSE: 16,
  GRANT: 96,
} as const;
