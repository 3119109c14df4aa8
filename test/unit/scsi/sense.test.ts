import { describe, expect, it } from 'vitest';
import { ScsiStatus } from '../../../src/shared/scsi/command.ts';
import {
  FIXED_SENSE_LENGTH,
  SenseKey,
  SenseReason,
  setCheckCondition,
  writeDescriptorSenseHeader,
  writeFixedSense,
} from '../../../src/shared/scsi/sense.ts';
import { makeCommand } from '../lun/helpers.ts';

describe('writeFixedSense', () => {
  it('writes the 18-byte fixed format without a field pointer', () => {
    const buf = Buffer.alloc(32, 0xaa);
    expect(writeFixedSense(buf, SenseReason.LBA_OUT_OF_RANGE)).toBe(18);
    expect([...buf.subarray(0, 18)]).toEqual([
      0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x21, 0x00, 0, 0, 0, 0,
    ]);
    expect(buf[18]).toBe(0xaa); // nothing past the sense data
  });

  it('encodes a CDB field pointer with a bit pointer (SPC-4 4.5.2.4.2)', () => {
    const buf = Buffer.alloc(18);
    writeFixedSense(buf, SenseReason.INVALID_FIELD_IN_CDB, { cdb: true, byte: 2, bit: 5 });
    expect(buf[2]).toBe(SenseKey.ILLEGAL_REQUEST);
    expect(buf[12]).toBe(0x24);
    expect(buf[13]).toBe(0x00);
    expect(buf[15]).toBe(0x80 | 0x40 | 0x08 | 5); // SKSV | C/D | BPV | bit 5
    expect(buf.readUInt16BE(16)).toBe(2);
  });

  it('encodes a parameter-list field pointer without a bit pointer', () => {
    const buf = Buffer.alloc(18);
    writeFixedSense(buf, SenseReason.INVALID_FIELD_IN_PARAMETER_LIST, { cdb: false, byte: 0x1234 });
    expect(buf[15]).toBe(0x80);
    expect(buf.readUInt16BE(16)).toBe(0x1234);
    expect([buf[12], buf[13]]).toEqual([0x26, 0x00]);
  });

  it('sets VALID and INFORMATION when given (miscompare offset)', () => {
    const buf = Buffer.alloc(18);
    writeFixedSense(buf, SenseReason.MISCOMPARE_DURING_VERIFY, undefined, 513);
    expect(buf[0]).toBe(0xf0);
    expect(buf[2]).toBe(SenseKey.MISCOMPARE);
    expect(buf.readUInt32BE(3)).toBe(513);
    expect([buf[12], buf[13]]).toEqual([0x1d, 0x00]);
  });

  it('maps every reason to the SPC-4 codes the brief names', () => {
    const expected: [keyof typeof SenseReason, number, number, number][] = [
      ['NO_SENSE', 0, 0, 0],
      ['LUN_NOT_READY', 2, 0x04, 0x00],
      ['MEDIUM_NOT_PRESENT', 2, 0x3a, 0x00],
      ['UNRECOVERED_READ_ERROR', 3, 0x11, 0x00],
      ['WRITE_ERROR', 3, 0x0c, 0x00],
      ['INVALID_COMMAND_OPERATION_CODE', 5, 0x20, 0x00],
      ['LBA_OUT_OF_RANGE', 5, 0x21, 0x00],
      ['INVALID_FIELD_IN_CDB', 5, 0x24, 0x00],
      ['LOGICAL_UNIT_NOT_SUPPORTED', 5, 0x25, 0x00],
      ['INVALID_FIELD_IN_PARAMETER_LIST', 5, 0x26, 0x00],
      ['PARAMETER_LIST_LENGTH_ERROR', 5, 0x1a, 0x00],
      ['INVALID_FIELD_IN_INFORMATION_UNIT', 5, 0x0e, 0x03],
      ['SAVING_PARAMETERS_NOT_SUPPORTED', 5, 0x39, 0x00],
      ['WRITE_PROTECTED', 7, 0x27, 0x00],
      ['POWER_ON_RESET_OR_BUS_DEVICE_RESET', 6, 0x29, 0x00],
      ['ABORTED_COMMAND', 0xb, 0x00, 0x00],
      ['MISCOMPARE_DURING_VERIFY', 0xe, 0x1d, 0x00],
    ];
    for (const [name, key, asc, ascq] of expected) {
      expect(SenseReason[name], name).toEqual({ key, asc, ascq });
    }
  });
});

describe('writeDescriptorSenseHeader', () => {
  it('writes response code 72h and no descriptors', () => {
    const buf = Buffer.alloc(8, 0xff);
    expect(writeDescriptorSenseHeader(buf, SenseReason.LOGICAL_UNIT_NOT_SUPPORTED)).toBe(8);
    expect([...buf]).toEqual([0x72, 0x05, 0x25, 0x00, 0, 0, 0, 0]);
  });
});

describe('setCheckCondition', () => {
  it('fills cmd.sense, senseLength and status and drops data-in', () => {
    const cmd = makeCommand([0x12], { dataLength: 8 });
    cmd.dataInLength = 36;
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, { cdb: true, byte: 1, bit: 1 });
    expect(cmd.status).toBe(ScsiStatus.CHECK_CONDITION);
    expect(cmd.senseLength).toBe(FIXED_SENSE_LENGTH);
    expect(cmd.dataInLength).toBe(0);
    expect(cmd.senseTriple).toEqual([5, 0x24, 0]);
    expect(cmd.fieldPointer).toEqual({ sksv: true, cd: true, bpv: true, bit: 1, field: 1 });
  });
});
