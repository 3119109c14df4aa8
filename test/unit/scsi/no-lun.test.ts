import { describe, expect, it } from 'vitest';
import { ScsiStatus } from '../../../src/shared/scsi/command.ts';
import { executeWithoutLun } from '../../../src/shared/scsi/no-lun.ts';
import { makeCommand } from '../lun/helpers.ts';

describe('executeWithoutLun', () => {
  it('answers INQUIRY with peripheral qualifier 011b and device type 1Fh', () => {
    const cmd = makeCommand([0x12, 0, 0, 0, 96, 0], { dataLength: 96 });
    executeWithoutLun(cmd);
    expect(cmd.status).toBe(ScsiStatus.GOOD);
    expect(cmd.dataInLength).toBe(36);
    expect(cmd.data[0]).toBe(0x7f);
    expect(cmd.data[2]).toBe(0x06);
    expect(cmd.data[3]! & 0x0f).toBe(2);
    expect(cmd.data[4]).toBe(31);
    expect(cmd.finishCount).toBe(0); // the caller finishes
  });

  it('truncates INQUIRY to the allocation length', () => {
    const cmd = makeCommand([0x12, 0, 0, 0, 5, 0], { dataLength: 96 });
    executeWithoutLun(cmd);
    expect(cmd.dataInLength).toBe(5);
    expect(cmd.data[5]).toBe(0xee);
  });

  it('rejects INQUIRY with a page code but EVPD = 0', () => {
    const cmd = makeCommand([0x12, 0, 0x80, 0, 96, 0], { dataLength: 96 });
    executeWithoutLun(cmd);
    expect(cmd.status).toBe(ScsiStatus.CHECK_CONDITION);
    expect(cmd.senseTriple).toEqual([5, 0x24, 0]);
    expect(cmd.fieldPointer.field).toBe(2);
  });

  it('returns LOGICAL UNIT NOT SUPPORTED as REQUEST SENSE data with GOOD status', () => {
    const cmd = makeCommand([0x03, 0, 0, 0, 252, 0], { dataLength: 252 });
    executeWithoutLun(cmd);
    expect(cmd.status).toBe(ScsiStatus.GOOD);
    expect(cmd.dataInLength).toBe(18);
    expect(cmd.data[0]).toBe(0x70);
    expect([cmd.data[2], cmd.data[12], cmd.data[13]]).toEqual([5, 0x25, 0]);
    const desc = makeCommand([0x03, 1, 0, 0, 252, 0], { dataLength: 252 });
    executeWithoutLun(desc);
    expect([...desc.dataIn]).toEqual([0x72, 5, 0x25, 0, 0, 0, 0, 0]);
  });

  it('fails every other command with LOGICAL UNIT NOT SUPPORTED', () => {
    for (const cdb of [[0x00, 0, 0, 0, 0, 0], [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], [0x25]]) {
      const cmd = makeCommand(cdb, { dataLength: 512 });
      executeWithoutLun(cmd);
      expect(cmd.status).toBe(ScsiStatus.CHECK_CONDITION);
      expect(cmd.senseTriple).toEqual([5, 0x25, 0]);
      expect(cmd.dataInLength).toBe(0);
    }
  });
});
