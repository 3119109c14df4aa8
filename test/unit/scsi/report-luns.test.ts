import { describe, expect, it } from 'vitest';
import { ScsiStatus } from '../../../src/shared/scsi/command.ts';
import { buildReportLuns, encodeLun } from '../../../src/shared/scsi/report-luns.ts';
import { makeCommand } from '../lun/helpers.ts';

function reportLuns(select: number, alloc: number, dataLength = alloc) {
  const cdb = [
    0xa0,
    0,
    select,
    0,
    0,
    0,
    (alloc >>> 24) & 0xff,
    (alloc >>> 16) & 0xff,
    (alloc >>> 8) & 0xff,
    alloc & 0xff,
    0,
    0,
  ];
  return makeCommand(cdb, { dataLength });
}

describe('encodeLun (SAM-5 4.7)', () => {
  it('uses peripheral device addressing below 256 and flat space up to 16383', () => {
    const b = Buffer.alloc(8, 0xff);
    expect(encodeLun(b, 0, 5)).toBe(true);
    expect([...b]).toEqual([0, 5, 0, 0, 0, 0, 0, 0]);
    expect(encodeLun(b, 0, 255)).toBe(true);
    expect([...b]).toEqual([0, 255, 0, 0, 0, 0, 0, 0]);
    expect(encodeLun(b, 0, 256)).toBe(true);
    expect([...b]).toEqual([0x41, 0x00, 0, 0, 0, 0, 0, 0]);
    expect(encodeLun(b, 0, 16383)).toBe(true);
    expect([...b]).toEqual([0x7f, 0xff, 0, 0, 0, 0, 0, 0]);
    expect(encodeLun(b, 0, 16384)).toBe(false);
    expect(encodeLun(b, 0, -1)).toBe(false);
  });
});

describe('buildReportLuns (SPC-4 6.33)', () => {
  it('lists every LUN with the LUN LIST LENGTH header', () => {
    const cmd = reportLuns(0, 4096);
    buildReportLuns(cmd, [0, 1, 300]);
    expect(cmd.status).toBe(ScsiStatus.GOOD);
    expect(cmd.dataInLength).toBe(32);
    expect([...cmd.data.subarray(0, 32)]).toEqual([
      0,
      0,
      0,
      24,
      0,
      0,
      0,
      0, //
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0, //
      0,
      1,
      0,
      0,
      0,
      0,
      0,
      0, //
      0x41,
      0x2c,
      0,
      0,
      0,
      0,
      0,
      0,
    ]);
  });

  it('SELECT REPORT 02h reports the same list, 01h (well known only) an empty one', () => {
    const all = reportLuns(2, 64);
    buildReportLuns(all, [0, 7]);
    expect(all.dataInLength).toBe(24);
    const wk = reportLuns(1, 64);
    buildReportLuns(wk, [0, 7]);
    expect(wk.status).toBe(ScsiStatus.GOOD);
    expect(wk.dataInLength).toBe(8);
    expect(wk.data.readUInt32BE(0)).toBe(0);
  });

  it('rejects an unknown SELECT REPORT with a field pointer to byte 2', () => {
    const cmd = reportLuns(3, 64);
    buildReportLuns(cmd, [0]);
    expect(cmd.status).toBe(ScsiStatus.CHECK_CONDITION);
    expect(cmd.senseTriple).toEqual([5, 0x24, 0]);
    expect(cmd.fieldPointer).toMatchObject({ sksv: true, cd: true, field: 2 });
  });

  it('rejects an allocation length below 16', () => {
    for (const alloc of [0, 4, 8, 15]) {
      const cmd = reportLuns(0, alloc, 64);
      buildReportLuns(cmd, [0]);
      expect(cmd.status, `alloc ${alloc}`).toBe(ScsiStatus.CHECK_CONDITION);
      expect(cmd.senseTriple).toEqual([5, 0x24, 0]);
      expect(cmd.fieldPointer.field).toBe(6);
    }
  });

  it('truncates to the allocation length but keeps the full LUN LIST LENGTH', () => {
    const luns = Array.from({ length: 10 }, (_, i) => i);
    const cmd = reportLuns(0, 20, 64);
    buildReportLuns(cmd, luns);
    expect(cmd.status).toBe(ScsiStatus.GOOD);
    expect(cmd.dataInLength).toBe(20);
    expect(cmd.data.readUInt32BE(0)).toBe(80);
    expect([...cmd.data.subarray(16, 20)]).toEqual([0, 1, 0, 0]); // head of LUN 1
    expect(cmd.data[20]).toBe(0xee); // canary: nothing written past the allocation length
  });

  it('never writes past the data buffer (EDTL smaller than allocation length)', () => {
    const cmd = reportLuns(0, 4096, 12);
    buildReportLuns(cmd, [0, 1, 2]);
    expect(cmd.dataInLength).toBe(32); // the fabric reports the residual
    expect(cmd.data.length).toBe(12);
    expect(cmd.data.readUInt32BE(0)).toBe(24);
  });
});
