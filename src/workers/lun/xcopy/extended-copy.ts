/**
 * EXTENDED COPY (LID1) (SPC-4 6.4; opcode 83h, service action 00h): the copy manager of
 * a disk, block device → block device segments between the LUs of this LUN worker.
 *
 * Two phases (SPC-4 5.16.7.3 / 5.16.7.4):
 *  1. Parse: the CDB and the whole parameter list are checked before any data moves;
 *     errors are ILLEGAL REQUEST with a field pointer into the parameter list.
 *  2. Process: segments run in order. Errors here (a target that cannot be reached, an
 *     LBA outside a copy target, an I/O error) end the command with COPY ABORTED; the
 *     COMMAND-SPECIFIC INFORMATION holds the segment number, the sense-key specific
 *     segment pointer the failing field, and the copy target's own sense data follows
 *     at byte 18.
 *
 * The copy runs off the LUN worker's critical path as chunked asynchronous I/O through
 * the LUs' BackingStore (COPY_CHUNK_BYTES per step): a file store's reads and writes
 * already run on libuv's thread pool, and a RAM store's step is one memcpy, after which
 * the loop yields (setImmediate) so other commands interleave. A pool thread would add a
 * hop for the file case and a memcpy is not worth moving, so it buys nothing here.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { ScsiStatus } from '../../../shared/scsi/command.ts';
import type { FieldPointer, SenseDetail } from '../../../shared/scsi/sense.ts';
import { FIXED_SENSE_LENGTH, SenseReason, setCheckCondition, writeFixedSense } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';
import { rejectReservedBits, rejectReservedBytes } from '../spc/unit-status.ts';
import type { CopyRecord } from './copy-state.ts';
import { withChunk } from '../backing/aligned-pool.ts';
import { IoFailure, ioFailure, yieldTurn } from '../sbc/bulk.ts';
import { CopyManagerStatus, copyKey, resolveCopyTarget, trimHeld } from './copy-state.ts';
import {
  COPY_CHUNK_BYTES,
  CSCD_DESCRIPTOR_LENGTH,
  DescriptorType,
  MAX_CONCURRENT_COPIES,
  MAX_CSCD_DESCRIPTORS,
  MAX_DESCRIPTOR_LIST_LENGTH,
  MAX_INLINE_DATA_LENGTH,
  MAX_SEGMENT_DESCRIPTORS,
  PARAMETER_HEADER_LENGTH,
} from './limits.ts';

/** LIST ID USAGE (SPC-4 6.4.3.1 table 107). */
const ListIdUsage = {
  HOLD: 0b00,
  RESERVED: 0b01,
  DISCARD: 0b10,
  NO_LIST_ID: 0b11,
} as const;

/** Block→block segment descriptor length (bytes after DESCRIPTOR LENGTH), SPC-4 6.4.6.5. */
const BLOCK_TO_BLOCK_DESCRIPTOR_LENGTH = 0x18;

/** One parsed identification descriptor CSCD. */
interface CopyTargetRef {
  /** Offset of the descriptor in the parameter list. */
  readonly offset: number;
  /** NAA designator, or null for designators spindle cannot resolve. */
  readonly naa: Buffer | null;
  /** DISK BLOCK LENGTH the client gave (device type specific parameters). */
  readonly blockLength: number;
}

/** One parsed block→block segment. */
interface Segment {
  readonly offset: number;
  readonly dc: boolean;
  readonly source: number;
  readonly destination: number;
  readonly blocks: number;
  readonly sourceLba: number;
  readonly destinationLba: number;
}

interface CopyJob {
  readonly lu: LogicalUnit;
  readonly cmd: ScsiCommand;
  readonly targets: CopyTargetRef[];
  readonly segments: Segment[];
  readonly record: CopyRecord;
  /** Key of the record in lu.copies.records, or null (LIST ID USAGE 11b). */
  readonly key: string | null;
}

const TWO_POW_32 = 0x1_0000_0000;

function paramField(byte: number, bit?: number): FieldPointer {
  return bit === undefined ? { cdb: false, byte } : { cdb: false, byte, bit };
}

function highBit(v: number): number {
  return 31 - Math.clz32(v);
}

/**
 * EXTENDED COPY (LID1) CDB (SPC-4 6.4.1 table 105):
 *   0 83h | 1 reserved(7..5) SERVICE ACTION 00h | 2-9 reserved |
 *   10-13 PARAMETER LIST LENGTH | 14 reserved | 15 CONTROL
 */
export function extendedCopy(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  if (rejectReservedBits(cmd, 1, 0xe0) || rejectReservedBytes(cmd, 2, 10) || rejectReservedBytes(cmd, 14, 15)) {
    return Completion.DONE;
  }
  const paramLength = cdb.readUInt32BE(10);
  cmd.dataOutWanted = paramLength;
  // SPC-4 6.4.1: a PARAMETER LIST LENGTH of zero is not an error; nothing is copied.
  if (paramLength === 0) return Completion.DONE;
  let len = paramLength < cmd.dataOutLength ? paramLength : cmd.dataOutLength;
  if (len > cmd.data.length) len = cmd.data.length;
  const p = cmd.data;
  if (len < PARAMETER_HEADER_LENGTH) {
    setCheckCondition(cmd, SenseReason.PARAMETER_LIST_LENGTH_ERROR);
    return Completion.DONE;
  }

  // Parameter list header (SPC-4 6.4.3.1 table 106):
  //   0 LIST IDENTIFIER | 1 reserved(7..6) STR(5) LIST ID USAGE(4..3) PRIORITY(2..0)
  //   2-3 CSCD DESCRIPTOR LIST LENGTH | 4-7 reserved | 8-11 SEGMENT DESCRIPTOR LIST LENGTH
  //   12-15 INLINE DATA LENGTH
  const listId = p[0]!;
  const usage = (p[1]! >> 3) & 0x03;
  if ((p[1]! & 0xc0) !== 0) return invalidParam(cmd, 1, highBit(p[1]! & 0xc0));
  if (usage === ListIdUsage.RESERVED) return invalidParam(cmd, 1, 4);
  if (usage === ListIdUsage.NO_LIST_ID && listId !== 0) return invalidParam(cmd, 0, 7);
  for (let i = 4; i < 8; i++) if (p[i] !== 0) return invalidParam(cmd, i, highBit(p[i]!));
  const targetListLength = p.readUInt16BE(2);
  const segmentListLength = p.readUInt32BE(8);
  const inlineLength = p.readUInt32BE(12);
  if (targetListLength + segmentListLength > MAX_DESCRIPTOR_LIST_LENGTH) {
    // SPC-4 6.4.3.1: the lists exceed MAXIMUM DESCRIPTOR LIST LENGTH.
    setCheckCondition(cmd, SenseReason.PARAMETER_LIST_LENGTH_ERROR);
    return Completion.DONE;
  }
  if (inlineLength > MAX_INLINE_DATA_LENGTH) return invalidParam(cmd, 12, 7);
  if (PARAMETER_HEADER_LENGTH + targetListLength + segmentListLength + inlineLength > len) {
    // The parameter data ends inside a descriptor list (libiscsi ExtendedCopy.ParamHdr).
    setCheckCondition(cmd, SenseReason.PARAMETER_LIST_LENGTH_ERROR);
    return Completion.DONE;
  }
  if (targetListLength % CSCD_DESCRIPTOR_LENGTH !== 0) return invalidParam(cmd, 2, 7);
  if (targetListLength / CSCD_DESCRIPTOR_LENGTH > MAX_CSCD_DESCRIPTORS) {
    setCheckCondition(cmd, SenseReason.TOO_MANY_TARGET_DESCRIPTORS, paramField(2, 7));
    return Completion.DONE;
  }

  const targets: CopyTargetRef[] = []; // allocation: EXTENDED COPY is not a hot path
  const targetsEnd = PARAMETER_HEADER_LENGTH + targetListLength;
  for (let o = PARAMETER_HEADER_LENGTH; o < targetsEnd; o += CSCD_DESCRIPTOR_LENGTH) {
    const t = parseTarget(cmd, p, o);
    if (t === null) return Completion.DONE;
    targets.push(t);
  }

  const segments: Segment[] = [];
  const segmentsEnd = targetsEnd + segmentListLength;
  for (let o = targetsEnd; o < segmentsEnd; ) {
    if (segments.length === MAX_SEGMENT_DESCRIPTORS) {
      setCheckCondition(cmd, SenseReason.TOO_MANY_SEGMENT_DESCRIPTORS, paramField(8, 7));
      return Completion.DONE;
    }
    if (o + 4 > segmentsEnd) return invalidParam(cmd, o, 7);
    const next = o + 4 + p.readUInt16BE(o + 2);
    const s = parseSegment(cmd, p, o, segmentsEnd);
    if (s === null) return Completion.DONE;
    segments.push(s);
    o = next;
  }

  // SPC-4 6.4.3.1: a LIST IDENTIFIER already in use by a copy of this I_T nexus.
  const copies = lu.copies;
  const key = usage === ListIdUsage.NO_LIST_ID ? null : copyKey(cmd.nexus, listId);
  if (key !== null && copies.records.get(key)?.status === CopyManagerStatus.IN_PROGRESS_FOREGROUND) {
    setCheckCondition(cmd, SenseReason.OPERATION_IN_PROGRESS);
    return Completion.DONE;
  }
  if (copies.active >= MAX_CONCURRENT_COPIES) {
    cmd.status = ScsiStatus.BUSY;
    return Completion.DONE;
  }
  if (segments.length === 0) return Completion.DONE;

  const record: CopyRecord = {
    status: CopyManagerStatus.IN_PROGRESS_FOREGROUND,
    segmentsProcessed: 0,
    bytesTransferred: 0,
    hold: usage === ListIdUsage.HOLD,
    sense: Buffer.alloc(0),
    commandStatus: ScsiStatus.GOOD,
  };
  if (key !== null) {
    copies.records.delete(key); // re-insert: Map order is age order for trimHeld
    copies.records.set(key, record);
  }
  copies.active++;
  const job: CopyJob = { lu, cmd, targets, segments, record, key };
  runJob(job).then(
    () => finishJob(job),
    (err: unknown) => {
      // A bug, not a SCSI error (those are set on cmd by runJob).
      setCheckCondition(cmd, SenseReason.INTERNAL_TARGET_FAILURE);
      lu.env.reportInternalError(err, cmd);
      finishJob(job);
    },
  );
  return Completion.PENDING;
}

function invalidParam(cmd: ScsiCommand, byte: number, bit: number): Completion {
  setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_PARAMETER_LIST, paramField(byte, bit));
  return Completion.DONE;
}

/**
 * Identification descriptor CSCD (SPC-4 6.4.5.6 table 120), 32 bytes at p[o]:
 *   0 E4h | 1 LU ID TYPE(7..6) NUL(5, obsolete) PERIPHERAL DEVICE TYPE(4..0)
 *   2-3 RELATIVE INITIATOR PORT IDENTIFIER | 4-27 designation descriptor with a
 *   designator of at most 20 bytes (4 CODE SET, 5 PIV ASSOCIATION DESIGNATOR TYPE,
 *   6 reserved, 7 DESIGNATOR LENGTH, 8-27 DESIGNATOR) | 28-31 device type specific
 *   parameters; for block devices (SPC-4 6.4.5.9.2 table 125): 28 reserved(7..3) PAD(2)
 *   reserved(1..0), 29-31 DISK BLOCK LENGTH.
 * LU ID TYPE is ignored (SPC-4: "shall be ignored" for this descriptor type); the
 * designator alone names the LU.
 */
function parseTarget(cmd: ScsiCommand, p: Buffer, o: number): CopyTargetRef | null {
  if (p[o] !== DescriptorType.IDENTIFICATION) {
    setCheckCondition(cmd, SenseReason.UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE, paramField(o, 7));
    return null;
  }
  if ((p[o + 1]! & 0x1f) !== 0x00) {
    // Only direct-access block devices (peripheral device type 00h) are copy targets.
    setCheckCondition(cmd, SenseReason.UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE, paramField(o + 1, 4));
    return null;
  }
  const designatorLength = p[o + 7]!;
  if (designatorLength > 20) {
    invalidParam(cmd, o + 7, 7);
    return null;
  }
  const codeSet = p[o + 4]! & 0x0f;
  const type = p[o + 5]! & 0x0f;
  const association = (p[o + 5]! >> 4) & 0x03;
  // NAA (type 3h), binary, associated with the logical unit: what VPD 83h reports.
  const isNaa = type === 0x3 && codeSet === 0x1 && association === 0 && (designatorLength === 8 || designatorLength === 16);
  const naa = isNaa ? Buffer.from(p.subarray(o + 8, o + 8 + designatorLength)) : null;
  if ((p[o + 28]! & 0xfb) !== 0) {
    invalidParam(cmd, o + 28, highBit(p[o + 28]! & 0xfb));
    return null;
  }
  return { offset: o, naa, blockLength: p.readUIntBE(o + 29, 3) };
}

/**
 * Segment descriptor at p[o]; only block→block (SPC-4 6.4.6.5 table 130):
 *   0 02h | 1 reserved(7..2) DC(1) CAT(0) | 2-3 DESCRIPTOR LENGTH (0018h)
 *   4-5 SOURCE CSCD DESCRIPTOR INDEX | 6-7 DESTINATION CSCD DESCRIPTOR INDEX
 *   8-9 reserved | 10-11 BLOCK DEVICE NUMBER OF BLOCKS | 12-19 SOURCE BLOCK DEVICE
 *   LOGICAL BLOCK ADDRESS | 20-27 DESTINATION BLOCK DEVICE LOGICAL BLOCK ADDRESS
 */
function parseSegment(cmd: ScsiCommand, p: Buffer, o: number, end: number): Segment | null {
  if (p[o] !== DescriptorType.BLOCK_TO_BLOCK) {
    setCheckCondition(cmd, SenseReason.UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE, paramField(o, 7));
    return null;
  }
  if (p.readUInt16BE(o + 2) !== BLOCK_TO_BLOCK_DESCRIPTOR_LENGTH || o + 4 + BLOCK_TO_BLOCK_DESCRIPTOR_LENGTH > end) {
    invalidParam(cmd, o + 2, 7);
    return null;
  }
  if ((p[o + 1]! & 0xfc) !== 0) {
    invalidParam(cmd, o + 1, highBit(p[o + 1]! & 0xfc));
    return null;
  }
  if (p[o + 8] !== 0 || p[o + 9] !== 0) {
    invalidParam(cmd, p[o + 8] !== 0 ? o + 8 : o + 9, 7);
    return null;
  }
  return {
    offset: o,
    dc: (p[o + 1]! & 0x02) !== 0,
    source: p.readUInt16BE(o + 4),
    destination: p.readUInt16BE(o + 6),
    blocks: p.readUInt16BE(o + 10),
    // 64-bit LBAs as doubles: exact below 2^53, and anything above is out of range anyway.
    sourceLba: p.readUInt32BE(o + 12) * TWO_POW_32 + p.readUInt32BE(o + 16),
    destinationLba: p.readUInt32BE(o + 20) * TWO_POW_32 + p.readUInt32BE(o + 24),
  };
}

/** Why a segment failed: COPY ABORTED reason, failing field, copy target's own sense. */
class SegmentError {
  readonly reason: SenseDetail;
  readonly field: number;
  readonly targetSense: SenseDetail | undefined;
  constructor(reason: SenseDetail, field: number, targetSense?: SenseDetail) {
    this.reason = reason;
    this.field = field;
    this.targetSense = targetSense;
  }
}

function resolve(job: CopyJob, seg: Segment, index: number, indexField: number): LogicalUnit {
  const ref = job.targets[index];
  if (ref === undefined) throw new SegmentError(SenseReason.UNREACHABLE_COPY_TARGET, seg.offset + indexField);
  const lu = ref.naa === null ? undefined : resolveCopyTarget(job.lu, ref.naa);
  if (lu === undefined) throw new SegmentError(SenseReason.COPY_TARGET_DEVICE_NOT_REACHABLE, ref.offset + 8);
  if (ref.blockLength !== lu.blockSize) {
    throw new SegmentError(SenseReason.COPY_ABORTED, ref.offset + 29, SenseReason.INVALID_FIELD_IN_PARAMETER_LIST);
  }
  return lu;
}

/**
 * One chunk from `lu`; a failure becomes the copy target's sense (backing/io-errors.ts),
 * noted in that LU's I/O error log. One promise per chunk: EXTENDED COPY is bulk work,
 * not the per-command hot path.
 */
function ioRead(lu: LogicalUnit, buf: Buffer, length: number, position: number): Promise<void> {
  return new Promise((res, rej) =>
    lu.store.read(buf, 0, length, position, (err) => (err ? rej(ioFailure(lu, 'read', err, position)) : res())),
  );
}

function ioWrite(lu: LogicalUnit, buf: Buffer, length: number, position: number): Promise<void> {
  return new Promise((res, rej) =>
    lu.store.write(buf, 0, length, position, !lu.writeCacheEnabled, (err) =>
      err ? rej(ioFailure(lu, 'write', err, position)) : res(),
    ),
  );
}

/**
 * Process every segment; on a segment error set COPY ABORTED sense on the command. Data
 * moves through one chunk of the aligned arena (backing/aligned-pool.ts), so O_DIRECT
 * stores on either side take it as it is.
 */
function runJob(job: CopyJob): Promise<void> {
  return withChunk((buf) => runSegments(job, buf));
}

async function runSegments(job: CopyJob, buf: Buffer): Promise<void> {
  for (let i = 0; i < job.segments.length; i++) {
    const seg = job.segments[i]!;
    try {
      const src = resolve(job, seg, seg.source, 4);
      const dst = resolve(job, seg, seg.destination, 6);
      const bytes = seg.blocks * (seg.dc ? dst.blockSize : src.blockSize);
      if (bytes % src.blockSize !== 0 || bytes % dst.blockSize !== 0) {
        // The segment ends inside a block of one side; no residue carrying (CAT/PAD).
        throw new SegmentError(SenseReason.UNEXPECTED_INEXACT_SEGMENT, seg.offset + 10);
      }
      if (seg.sourceLba + bytes / src.blockSize > src.blockCount) {
        throw new SegmentError(SenseReason.COPY_ABORTED, seg.offset + 12, SenseReason.LBA_OUT_OF_RANGE);
      }
      if (seg.destinationLba + bytes / dst.blockSize > dst.blockCount) {
        throw new SegmentError(SenseReason.COPY_ABORTED, seg.offset + 20, SenseReason.LBA_OUT_OF_RANGE);
      }
      if (bytes > 0 && dst.readOnly) {
        throw new SegmentError(SenseReason.COPY_ABORTED, seg.offset + 6, SenseReason.WRITE_PROTECTED);
      }
      let from = seg.sourceLba * src.blockSize;
      let to = seg.destinationLba * dst.blockSize;
      for (let left = bytes; left > 0; ) {
        const n = left < COPY_CHUNK_BYTES ? left : COPY_CHUNK_BYTES;
        // Each chunk is one step on the destination LU: not while COMPARE AND WRITE (or
        // another exclusive command, here or held for another node) has it to itself.
        await dst.sbc.step(async () => {
          try {
            await ioRead(src, buf, n, from);
          } catch (err) {
            throw new SegmentError(SenseReason.COPY_ABORTED, seg.offset + 12, targetSense(err, SenseReason.UNRECOVERED_READ_ERROR));
          }
          try {
            await ioWrite(dst, buf, n, to);
          } catch (err) {
            throw new SegmentError(SenseReason.COPY_ABORTED, seg.offset + 20, targetSense(err, SenseReason.WRITE_ERROR));
          }
        });
        from += n;
        to += n;
        left -= n;
        job.record.bytesTransferred += n;
        if (left > 0) await yieldTurn();
      }
      job.record.segmentsProcessed++;
    } catch (err) {
      if (!(err instanceof SegmentError)) throw err;
      setCopyAborted(job.cmd, err, i);
      return;
    }
  }
}

/** The copy target's own sense for a failed chunk (IoFailure carries it). */
function targetSense(err: unknown, fallback: SenseDetail): SenseDetail {
  return err instanceof IoFailure ? err.reason : fallback;
}

/**
 * COPY ABORTED sense (SPC-4 5.16.7.4, fixed format):
 *   8-11  COMMAND-SPECIFIC INFORMATION: number of the segment being processed
 *   15-17 segment pointer (SPC-4 4.5.2.4.5 table 53): SKSV 1 | SD 0 (FIELD POINTER is an
 *         offset in the parameter list) | BPV 0; FIELD POINTER
 *   18..  the copy target's sense data (fixed format, 18 bytes), when it reported one
 */
function setCopyAborted(cmd: ScsiCommand, e: SegmentError, segment: number): void {
  setCheckCondition(cmd, e.reason, { cdb: false, byte: e.field });
  const s = cmd.sense;
  s.writeUInt32BE(segment, 8); // COMMAND-SPECIFIC INFORMATION
  s[15] = 0x80; // SKSV 1 | reserved | SD 0 | reserved | BPV 0 | BIT POINTER 0
  if (e.targetSense !== undefined) {
    writeFixedSense(s.subarray(FIXED_SENSE_LENGTH), e.targetSense);
    s[7] = FIXED_SENSE_LENGTH - 8 + FIXED_SENSE_LENGTH; // ADDITIONAL SENSE LENGTH
    cmd.senseLength = 2 * FIXED_SENSE_LENGTH;
  }
}

function finishJob(job: CopyJob): void {
  const { lu, cmd, record, key } = job;
  const copies = lu.copies;
  copies.active--;
  const ok = cmd.status === ScsiStatus.GOOD;
  record.status = ok ? CopyManagerStatus.COMPLETED_OK : CopyManagerStatus.COMPLETED_WITH_ERRORS;
  record.commandStatus = cmd.status;
  record.sense = ok ? Buffer.alloc(0) : Buffer.from(cmd.sense.subarray(0, cmd.senseLength));
  if (key !== null) {
    // LIST ID USAGE 00b: held for RECEIVE COPY RESULTS; otherwise forgotten now.
    if (record.hold) trimHeld(copies);
    else if (copies.records.get(key) === record) copies.records.delete(key);
  }
  cmd.finish();
}
