import { describe, expect, it } from 'vitest';
import {
  allocationLength10,
  allocationLength12,
  allocationLength16,
  allocationLength6,
  allocationLengthInquiry,
  cdbLba,
  cdbLengthOf,
  cdbTransferLength,
  controlByteOffset,
  serviceAction,
} from '../../../src/shared/scsi/cdb.ts';
import { Opcode } from '../../../src/shared/scsi/opcodes.ts';
import { cdb10, cdb12, cdb16, cdb6 } from '../lun/helpers.ts';

const b = (bytes: number[]) => {
  const buf = Buffer.alloc(32);
  Buffer.from(bytes).copy(buf);
  return buf;
};

describe('CDB length by group code', () => {
  it('follows SPC-4 table 4', () => {
    expect(cdbLengthOf(Opcode.READ_6)).toBe(6);
    expect(cdbLengthOf(Opcode.READ_10)).toBe(10);
    expect(cdbLengthOf(Opcode.MODE_SENSE_10)).toBe(10);
    expect(cdbLengthOf(Opcode.READ_16)).toBe(16);
    expect(cdbLengthOf(Opcode.READ_12)).toBe(12);
    expect(cdbLengthOf(Opcode.VARIABLE_LENGTH)).toBe(0);
    expect(cdbLengthOf(0xc0)).toBe(0);
    expect(cdbLengthOf(0xe0)).toBe(0);
    expect(controlByteOffset(Opcode.SERVICE_ACTION_IN_16)).toBe(15);
  });
});

describe('LBA and transfer length', () => {
  it('decodes 6-byte CDBs, 21-bit LBA, length 0 = 256', () => {
    expect(cdbLba(b(cdb6(Opcode.READ_6, 0x1fffff, 0)))).toBe(0x1fffff);
    expect(cdbTransferLength(b(cdb6(Opcode.READ_6, 0, 0)))).toBe(256);
    expect(cdbTransferLength(b(cdb6(Opcode.WRITE_6, 0, 255)))).toBe(255);
    // the top 3 bits of byte 1 are not LBA bits
    expect(cdbLba(b([Opcode.READ_6, 0xe1, 0x02, 0x03, 1, 0]))).toBe(0x010203);
  });

  it('decodes 10- and 12-byte CDBs', () => {
    expect(cdbLba(b(cdb10(Opcode.READ_10, 0xfffffffe, 0xffff)))).toBe(0xfffffffe);
    expect(cdbTransferLength(b(cdb10(Opcode.READ_10, 0, 0xffff)))).toBe(0xffff);
    expect(cdbTransferLength(b(cdb10(Opcode.READ_10, 0, 0)))).toBe(0);
    expect(cdbLba(b(cdb12(Opcode.WRITE_12, 0x80000000, 7)))).toBe(0x80000000);
    expect(cdbTransferLength(b(cdb12(Opcode.WRITE_12, 0, 0xffffffff)))).toBe(0xffffffff);
  });

  it('decodes 16-byte CDBs exactly below 2^53 and above any capacity beyond', () => {
    expect(cdbLba(b(cdb16(Opcode.READ_16, 2n ** 40n + 5n, 1)))).toBe(2 ** 40 + 5);
    expect(cdbLba(b(cdb16(Opcode.READ_16, 2n ** 53n - 1n, 1)))).toBe(2 ** 53 - 1);
    expect(cdbLba(b(cdb16(Opcode.READ_16, 2n ** 64n - 1n, 1)))).toBeGreaterThanOrEqual(2 ** 63);
    expect(cdbTransferLength(b(cdb16(Opcode.READ_16, 0n, 0xffffffff)))).toBe(0xffffffff);
  });
});

describe('allocation length and service action', () => {
  it('reads each layout', () => {
    expect(allocationLength6(b([0x1a, 0, 0x3f, 0, 0xfe, 0]))).toBe(0xfe);
    expect(allocationLengthInquiry(b([0x12, 0, 0, 0x01, 0xff, 0]))).toBe(511);
    expect(allocationLength10(b([0x5a, 0, 0x3f, 0, 0, 0, 0, 0x12, 0x34, 0]))).toBe(0x1234);
    expect(allocationLength12(b([0xa0, 0, 0, 0, 0, 0, 0x01, 0x02, 0x03, 0x04, 0, 0]))).toBe(0x01020304);
    expect(allocationLength16(b([0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]))).toBe(32);
    expect(serviceAction(b([0x9e, 0xf0]))).toBe(0x10);
  });
});
