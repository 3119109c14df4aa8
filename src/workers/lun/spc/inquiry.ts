/**
 * INQUIRY (SPC-4 6.6): standard data and the vital product data pages of a disk or a
 * CD-ROM drive (the PERIPHERAL DEVICE TYPE is the LU's, device-type.ts).
 *
 * VPD pages live in one table, sorted by page code; the Supported VPD Pages page
 * (SPC-4 7.8.13) is generated from it, so the list cannot drift from what is served.
 * The block device pages (B0h-B2h) and the third-party copy page (8Fh) are a disk's
 * only.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { allocationLengthInquiry, respondData } from '../../../shared/scsi/cdb.ts';
import { VpdPage } from '../../../shared/scsi/opcodes.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from './handler.ts';
import { buildThirdPartyCopyDescriptors } from '../xcopy/receive-copy-results.ts';
import { DeviceType } from '../device-type.ts';

/** SPC-4 6.6.2 table 148/149: version descriptors claimed in standard INQUIRY data (disk). */
export const VERSION_DESCRIPTORS: readonly number[] = [
  0x00a0, // SAM-5 (no version claimed)
  0x0960, // iSCSI (no version claimed)
  0x0460, // SPC-4 (no version claimed)
  0x04c0, // SBC-3 (no version claimed): the SBC-3 feature set incl. the 3Ch Block Limits page
];

/** ...and of a CD-ROM drive. */
export const CDROM_VERSION_DESCRIPTORS: readonly number[] = [
  0x00a0, // SAM-5 (no version claimed)
  0x0960, // iSCSI (no version claimed)
  0x0460, // SPC-4 (no version claimed)
  0x04e0, // MMC-6 (no version claimed)
];

/** Byte 0 of INQUIRY data: PERIPHERAL QUALIFIER 000b (connected) | PERIPHERAL DEVICE TYPE. */
function peripheral(lu: LogicalUnit): number {
  return lu.deviceType & 0x1f;
}

const isDisk = (lu: LogicalUnit): boolean => lu.deviceType === DeviceType.DISK;

/** Standard INQUIRY data length: 96 bytes, room for 8 version descriptors. */
export const STANDARD_INQUIRY_LENGTH = 96;

/** Builds a VPD page into buf, returns its length; `cmd` identifies the I_T nexus (0x83). */
type VpdBuilder = (lu: LogicalUnit, buf: Buffer, cmd: ScsiCommand) => number;

interface VpdEntry {
  readonly page: number;
  readonly build: VpdBuilder;
  /** Whether `lu` has the page (absent: every LU). */
  readonly present?: (lu: LogicalUnit) => boolean;
}

/**
 * INQUIRY CDB (SPC-4 6.6.1 table 142):
 *   0 opcode 12h | 1 reserved(7..2) CMDDT-obsolete(1) EVPD(0) | 2 PAGE CODE
 *   3-4 ALLOCATION LENGTH | 5 CONTROL
 */
export function inquiry(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  const evpd = (cdb[1]! & 0x01) !== 0;
  if ((cdb[1]! & 0xfe) !== 0) {
    // CMDDT (bit 1) is obsolete since SPC-3; a device that does not support it rejects it.
    const bit = 31 - Math.clz32(cdb[1]! & 0xfe);
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(1, bit));
    return Completion.DONE;
  }
  const pageCode = cdb[2]!;
  if (!evpd && pageCode !== 0) {
    // SPC-4 6.6.1: PAGE CODE set while EVPD is zero.
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(2, 7));
    return Completion.DONE;
  }
  const alloc = allocationLengthInquiry(cdb);
  const buf = lu.scratch;
  if (!evpd) {
    respondData(cmd, buf, buildStandardInquiry(lu, buf), alloc);
    return Completion.DONE;
  }
  const entry = VPD_PAGES.find((e) => e.page === pageCode && (e.present === undefined || e.present(lu)));
  if (entry === undefined) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(2, 7));
    return Completion.DONE;
  }
  respondData(cmd, buf, entry.build(lu, buf, cmd), alloc);
  return Completion.DONE;
}

/** Standard INQUIRY data (SPC-4 6.6.2 table 144) into buf; returns its length (96). */
export function buildStandardInquiry(lu: LogicalUnit, buf: Buffer): number {
  buf.fill(0, 0, STANDARD_INQUIRY_LENGTH);
  const disk = isDisk(lu);
  buf[0] = peripheral(lu); // PERIPHERAL QUALIFIER | PERIPHERAL DEVICE TYPE (00h disk, 05h CD/DVD)
  // RMB: removable medium (device config; always for a CD-ROM) | LU_CONG 0
  buf[1] = lu.sbc.removable ? 0x80 : 0x00;
  buf[2] = 0x06; // VERSION: SPC-4
  buf[3] = 0x32; // NORMACA 1 (NACA = 1 supported, task-set.ts) | HISUP 1 (hierarchical LUNs) | RESPONSE DATA FORMAT 2
  buf[4] = STANDARD_INQUIRY_LENGTH - 5; // ADDITIONAL LENGTH: bytes after byte 4
  // SCCS 0 | ACC 0 | TPGS 11b: implicit and explicit ALUA (SPC-4 5.16, alua/; SET TARGET
  // PORT GROUPS) | 3PC (EXTENDED COPY: disks only) | reserved | PROTECT 0
  buf[5] = 0x30 | (disk ? 0x08 : 0x00);
  // ENCSERV 0 | VS | MULTIP (bit 4): the LU is reachable through more than one target port
  buf[6] = targetPortCount(lu) > 1 ? 0x10 : 0x00;
  buf[7] = 0x02; // CMDQUE 1: full task management model (SAM-5 8.4)
  buf.write(lu.vendor, 8, 8, 'latin1'); // 8-15: T10 VENDOR IDENTIFICATION
  buf.write(lu.product, 16, 16, 'latin1'); // 16-31: PRODUCT IDENTIFICATION
  buf.write(lu.revision, 32, 4, 'latin1'); // 32-35: PRODUCT REVISION LEVEL
  // 36-55: vendor specific (zero); 56: CLOCKING/QAS/IUS (zero); 57: reserved.
  // 58-73: VERSION DESCRIPTOR 1..8.
  const versions = disk ? VERSION_DESCRIPTORS : CDROM_VERSION_DESCRIPTORS;
  for (let i = 0; i < versions.length; i++) buf.writeUInt16BE(versions[i]!, 58 + 2 * i);
  // 74-95: reserved.
  return STANDARD_INQUIRY_LENGTH;
}

/** Target ports through which `lu` is exported (every port of its ALUA groups). */
function targetPortCount(lu: LogicalUnit): number {
  let n = 0;
  for (const g of lu.alua.groups) n += g.relativeTargetPortIds.length;
  return n;
}

/** VPD page header (SPC-4 7.8.1 table 467) with a 16-bit PAGE LENGTH. */
function vpdHeader(lu: LogicalUnit, buf: Buffer, page: number, pageLength: number): void {
  buf[0] = peripheral(lu); // PERIPHERAL QUALIFIER | PERIPHERAL DEVICE TYPE
  buf[1] = page; // PAGE CODE
  buf.writeUInt16BE(pageLength, 2); // PAGE LENGTH: bytes after byte 3
}

/** 00h Supported VPD Pages (SPC-4 7.8.13): generated from VPD_PAGES. */
function buildSupportedPages(lu: LogicalUnit, buf: Buffer): number {
  let n = 0;
  for (const e of VPD_PAGES) if (e.present === undefined || e.present(lu)) buf[4 + n++] = e.page; // ascending
  vpdHeader(lu, buf, VpdPage.SUPPORTED_VPD_PAGES, n);
  return 4 + n;
}

/** 80h Unit Serial Number (SPC-4 7.8.15). */
function buildUnitSerial(lu: LogicalUnit, buf: Buffer): number {
  const n = buf.write(lu.serial, 4, 'latin1'); // 4..: PRODUCT SERIAL NUMBER (ASCII)
  vpdHeader(lu, buf, VpdPage.UNIT_SERIAL_NUMBER, n);
  return 4 + n;
}

/**
 * 83h Device Identification (SPC-4 7.8.6). Two designators associated with the LU,
 * identical on every node of the cluster:
 *   1. NAA IEEE Registered Extended (type 3h, binary) - what Linux multipath keys on;
 *   2. T10 vendor ID based (type 1h, ASCII): T10 VENDOR ID + unit serial number;
 * then, for the target port the command came through (its I_T nexus), the designators
 * ALUA initiators match against REPORT TARGET PORT GROUPS (SPC-4 5.16.3):
 *   3. relative target port identifier (type 4h, association 01b: target port);
 *   4. target port group (type 5h, association 01b);
 *   5. SCSI target port name (type 8h, association 01b): iSCSI name + ",t,0x" + TPGT
 *      (RFC 7143 4.2.7.x / SPC-4 7.8.6.11);
 *   6. SCSI target device name (type 8h, association 10b): the iSCSI TargetName.
 * A command without a known nexus (unit tests, loopback) gets 1 and 2 only.
 */
function buildDeviceIdentification(lu: LogicalUnit, buf: Buffer, cmd: ScsiCommand): number {
  let p = 4;
  // Designation descriptor (SPC-4 7.8.6.1 table 482):
  buf[p] = 0x01; // PROTOCOL IDENTIFIER 0 (ignored, PIV 0) | CODE SET 1h: binary
  buf[p + 1] = 0x03; // PIV 0 | ASSOCIATION 00b: logical unit | DESIGNATOR TYPE 3h: NAA
  buf[p + 2] = 0x00; // reserved
  buf[p + 3] = lu.naa.length; // DESIGNATOR LENGTH: 16
  lu.naa.copy(buf, p + 4); // DESIGNATOR
  p += 4 + lu.naa.length;

  const t10Start = p;
  buf[p] = 0x02; // PROTOCOL IDENTIFIER 0 | CODE SET 2h: ASCII
  buf[p + 1] = 0x01; // PIV 0 | ASSOCIATION 00b: logical unit | DESIGNATOR TYPE 1h: T10 vendor ID
  buf[p + 2] = 0x00; // reserved
  buf.write(lu.vendor, p + 4, 8, 'latin1'); // T10 VENDOR IDENTIFICATION (8 bytes)
  const serialLength = buf.write(lu.serial, p + 12, 'latin1'); // VENDOR SPECIFIC IDENTIFIER
  buf[t10Start + 3] = 8 + serialLength; // DESIGNATOR LENGTH
  p += 4 + 8 + serialLength;

  const nexus = lu.nexuses.get(cmd.nexus);
  if (nexus !== undefined) {
    p = portNumberDesignator(buf, p, DesignatorType.RELATIVE_TARGET_PORT, nexus.relativeTargetPortId);
    p = portNumberDesignator(buf, p, DesignatorType.TARGET_PORT_GROUP, nexus.targetPortGroup);
    // The iSCSI TPGT is the relative target port id today: serve.ts derives both from the
    // portal's tag (one portal = one target port = one portal group).
    const tpgt = nexus.relativeTargetPortId.toString(16).padStart(4, '0');
    p = scsiNameDesignator(buf, p, Association.TARGET_PORT, `${nexus.targetName},t,0x${tpgt}`);
    p = scsiNameDesignator(buf, p, Association.TARGET_DEVICE, nexus.targetName);
  }

  vpdHeader(lu, buf, VpdPage.DEVICE_IDENTIFICATION, p - 4);
  return p;
}

/** PROTOCOL IDENTIFIER 5h: iSCSI (SPC-4 7.6.1 table 445). */
const PROTOCOL_ISCSI = 0x5;
/** CODE SET (SPC-4 7.8.6.1 table 483). */
const CodeSet = { BINARY: 0x1, ASCII: 0x2, UTF8: 0x3 } as const;
/** ASSOCIATION (table 484), already shifted into bits 5..4 of byte 1. */
const Association = { LOGICAL_UNIT: 0x00, TARGET_PORT: 0x10, TARGET_DEVICE: 0x20 } as const;
/** DESIGNATOR TYPE (table 485). */
const DesignatorType = { RELATIVE_TARGET_PORT: 0x4, TARGET_PORT_GROUP: 0x5, SCSI_NAME_STRING: 0x8 } as const;
/** PIV (byte 1 bit 7): PROTOCOL IDENTIFIER is valid (association 01b or 10b). */
const PIV = 0x80;

/**
 * Relative target port (SPC-4 7.8.6.7) or target port group (7.8.6.8) designator at p:
 * 4 header bytes and 4 designator bytes; returns the next offset.
 */
function portNumberDesignator(buf: Buffer, p: number, type: number, value: number): number {
  buf[p] = (PROTOCOL_ISCSI << 4) | CodeSet.BINARY; // PROTOCOL IDENTIFIER | CODE SET 1h: binary
  buf[p + 1] = PIV | Association.TARGET_PORT | type; // PIV 1 | ASSOCIATION 01b | DESIGNATOR TYPE
  buf[p + 2] = 0x00; // reserved
  buf[p + 3] = 4; // DESIGNATOR LENGTH
  buf.writeUInt16BE(0, p + 4); // 0-1: obsolete (7.8.6.7) / reserved (7.8.6.8)
  buf.writeUInt16BE(value & 0xffff, p + 6); // 2-3: RELATIVE TARGET PORT IDENTIFIER / TARGET PORT GROUP
  return p + 8;
}

/**
 * SCSI name string designator (SPC-4 7.8.6.11) at p: UTF-8, null terminated, padded
 * with nulls to a multiple of 4 bytes (at most 256); returns the next offset.
 */
function scsiNameDesignator(buf: Buffer, p: number, association: number, name: string): number {
  buf[p] = (PROTOCOL_ISCSI << 4) | CodeSet.UTF8; // PROTOCOL IDENTIFIER | CODE SET 3h: UTF-8
  buf[p + 1] = PIV | association | DesignatorType.SCSI_NAME_STRING; // PIV 1 | ASSOCIATION | TYPE 8h
  buf[p + 2] = 0x00; // reserved
  // iSCSI names are at most 223 bytes (RFC 7143 4.2.7.1), so with ",t,0x" + 4 digits and
  // the terminator the string always fits 256 bytes.
  const n = buf.write(name, p + 4, 251, 'utf8');
  const length = (n + 1 + 3) & ~3; // null terminator, then pad to a multiple of 4
  buf.fill(0, p + 4 + n, p + 4 + length); // SCSI NAME STRING terminator and padding
  buf[p + 3] = length; // DESIGNATOR LENGTH
  return p + 4 + length;
}

/** 8Fh Third-party Copy (SPC-4 7.8.17): the copy manager's commands and limits. */
function buildThirdPartyCopy(lu: LogicalUnit, buf: Buffer): number {
  const n = buildThirdPartyCopyDescriptors(lu, buf);
  vpdHeader(lu, buf, VpdPage.THIRD_PARTY_COPY, n - 4);
  return n;
}

/** Block Limits page length: 3Ch, the SBC-3/SBC-4 size libiscsi checks for SBC-3 claims. */
const BLOCK_LIMITS_PAGE_LENGTH = 0x3c;

/** B0h Block Limits (SBC-4 6.6.4 table 261). */
function buildBlockLimits(lu: LogicalUnit, buf: Buffer): number {
  buf.fill(0, 0, 4 + BLOCK_LIMITS_PAGE_LENGTH);
  vpdHeader(lu, buf, VpdPage.BLOCK_LIMITS, BLOCK_LIMITS_PAGE_LENGTH);
  buf[4] = 0x00; // WSNZ 0
  const sbc = lu.sbc;
  buf[5] = sbc.maxCompareAndWriteBlocks; // MAXIMUM COMPARE AND WRITE LENGTH (sbc/atomic.ts)
  // 6-7: OPTIMAL TRANSFER LENGTH GRANULARITY: one physical block.
  buf.writeUInt16BE(sbc.blocksPerPhysical, 6);
  // 8-11: MAXIMUM TRANSFER LENGTH in blocks (0: not reported).
  buf.writeUInt32BE(lu.maxTransferBlocks, 8);
  // 12-15: OPTIMAL TRANSFER LENGTH: 0, not reported.
  // 16-19: MAXIMUM PREFETCH LENGTH: 0.
  if (sbc.thin) {
    // 20-23: MAXIMUM UNMAP LBA COUNT; 24-27: MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT
    // (0 on fully provisioned LUs: LBPU = 0, sbc/provisioning.ts).
    buf.writeUInt32BE(sbc.maxUnmapBlocks, 20);
    buf.writeUInt32BE(sbc.maxUnmapDescriptors, 24);
    // 28-31: OPTIMAL UNMAP GRANULARITY: the allocation map granule (sbc/allocation.ts),
    // or a block device's discard granularity.
    const discardGranule = Math.ceil((lu.store.device?.discardGranularity ?? 0) / lu.blockSize);
    buf.writeUInt32BE(sbc.map?.granule ?? Math.max(discardGranule, sbc.blocksPerPhysical), 28);
    // 32-35: UGAVALID 0 | UNMAP GRANULARITY ALIGNMENT: not reported.
  }
  // 36-43: MAXIMUM WRITE SAME LENGTH (sbc/write-same.ts); < 2^32 blocks.
  buf.writeUInt32BE(sbc.maxWriteSameBlocks, 40);
  // 44-47: MAXIMUM ATOMIC TRANSFER LENGTH (WRITE ATOMIC(16), sbc/atomic.ts).
  buf.writeUInt32BE(sbc.maxAtomicBlocks, 44);
  // 48-51: ATOMIC ALIGNMENT 0 and 52-55: ATOMIC TRANSFER LENGTH GRANULARITY 0 (none
  // required); 56-63: atomic boundaries not supported (0).
  return 4 + BLOCK_LIMITS_PAGE_LENGTH;
}

/** B1h Block Device Characteristics (SBC-4 6.6.2 table 257). */
function buildBlockDeviceCharacteristics(lu: LogicalUnit, buf: Buffer): number {
  buf.fill(0, 0, 64);
  vpdHeader(lu, buf, VpdPage.BLOCK_DEVICE_CHARACTERISTICS, 0x3c);
  // 4-5: MEDIUM ROTATION RATE: 0001h non-rotating medium; a block device that reports a
  // rotating medium (queue/rotational) gets 0000h, rate not reported (spindle cannot
  // know the RPM), which initiators treat as rotational.
  buf.writeUInt16BE(lu.store.device?.rotational === true ? 0x0000 : 0x0001, 4);
  buf[6] = 0x00; // PRODUCT TYPE: not indicated
  // 7: WABEREQ(7..6) | WACEREQ(5..4) | NOMINAL FORM FACTOR(3..0) not reported.
  // 01b: a read after SANITIZE BLOCK ERASE / CRYPTOGRAPHIC ERASE succeeds and returns
  // the erased data (zeros); both exist on thin LUs with an allocation map only
  // (sbc/commands.ts), 00b otherwise.
  buf[7] = lu.sbc.map !== null ? 0x50 : 0x00;
  buf[8] = 0x00; // ZONED 00b | BOCS 0 | FUAB 0 | VBULS 0
  // 9-63: reserved.
  return 64;
}

/**
 * B2h Logical Block Provisioning (SBC-4 6.6.6 table 264). A thin LU (device `thin`)
 * supports UNMAP and WRITE SAME(10/16) with UNMAP, deallocated blocks read zeros; a
 * fully provisioned LU supports none of them (sbc/provisioning.ts, sbc/write-same.ts).
 */
function buildLogicalBlockProvisioning(lu: LogicalUnit, buf: Buffer): number {
  vpdHeader(lu, buf, VpdPage.LOGICAL_BLOCK_PROVISIONING, 4);
  const thin = lu.sbc.thin;
  buf[4] = 0x00; // THRESHOLD EXPONENT: no thresholds
  // 5: LBPU(7) | LBPWS(6) | LBPWS10(5) | LBPRZ(4..2) = 001b | ANC_SUP(1) 0 | DP(0) 0
  buf[5] = thin ? 0xe0 | (0b001 << 2) : 0x00;
  // 6: MINIMUM PERCENTAGE 0 | PROVISIONING TYPE (2..0): 010b thin, 000b fully provisioned
  buf[6] = thin ? 0x02 : 0x00;
  buf[7] = 0x00; // THRESHOLD PERCENTAGE
  return 8;
}

/** Served VPD pages, ascending by page code (SPC-4 7.8.13 requires ascending order). */
export const VPD_PAGES: readonly VpdEntry[] = [
  { page: VpdPage.SUPPORTED_VPD_PAGES, build: buildSupportedPages },
  { page: VpdPage.UNIT_SERIAL_NUMBER, build: buildUnitSerial },
  { page: VpdPage.DEVICE_IDENTIFICATION, build: buildDeviceIdentification },
  { page: VpdPage.THIRD_PARTY_COPY, build: buildThirdPartyCopy, present: isDisk },
  { page: VpdPage.BLOCK_LIMITS, build: buildBlockLimits, present: isDisk },
  { page: VpdPage.BLOCK_DEVICE_CHARACTERISTICS, build: buildBlockDeviceCharacteristics, present: isDisk },
  { page: VpdPage.LOGICAL_BLOCK_PROVISIONING, build: buildLogicalBlockProvisioning, present: isDisk },
];
