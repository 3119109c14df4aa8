import { describe, expect, it } from 'vitest';
import {
  AsyncEvent,
  BHS_LENGTH,
  DIGEST_LENGTH,
  Field,
  LogoutResponse,
  Opcode,
  RESERVED_TAG,
  RejectReason,
  ResidualFlag,
  ScsiCmdFlags,
  TmfResponse,
  ahsLength,
  buildAsyncMessage,
  buildDataIn,
  buildLoginResponse,
  buildLogoutResponse,
  buildNopIn,
  buildR2T,
  buildReject,
  buildScsiResponse,
  buildTextResponse,
  buildTmfResponse,
  dataSegmentLength,
  decodeLun,
  encodeLun,
  finalBit,
  isImmediate,
  itt,
  opcodeOf,
  pad4,
  putU16,
  putU32,
  u16,
  u32,
} from '../../../src/shared/iscsi/pdu.ts';
import type { SeqNumbers } from '../../../src/shared/iscsi/pdu.ts';

/** Builders write at a non-zero offset into a buffer pre-filled with junk. */
const O = 5;
const JUNK = 0xaa;

function area(): Uint8Array {
  return new Uint8Array(O + BHS_LENGTH + 7).fill(JUNK);
}

/** The 48 BHS bytes, after checking nothing outside them was touched. */
function bhs(b: Uint8Array): number[] {
  for (let i = 0; i < O; i++) expect(b[i]).toBe(JUNK);
  for (let i = O + BHS_LENGTH; i < b.length; i++) expect(b[i]).toBe(JUNK);
  return [...b.subarray(O, O + BHS_LENGTH)];
}

/** An all-zero 48-byte BHS with `bytes` placed at each offset. */
function expected(...fields: [number, number[]][]): number[] {
  const e = new Array<number>(BHS_LENGTH).fill(0);
  for (const [off, bytes] of fields) bytes.forEach((v, i) => (e[off + i] = v));
  return e;
}

const SEQ: SeqNumbers = { statSN: 0xa1a2a3a4, expCmdSN: 0xb1b2b3b4, maxCmdSN: 0xc1c2c3c4 };
const SEQ_BYTES: [number, number[]] = [
  24,
  [0xa1, 0xa2, 0xa3, 0xa4, 0xb1, 0xb2, 0xb3, 0xb4, 0xc1, 0xc2, 0xc3, 0xc4],
];
const ITT = 0x11223344;
const ITT_BYTES: [number, number[]] = [16, [0x11, 0x22, 0x33, 0x44]];
const FFFF: number[] = [0xff, 0xff, 0xff, 0xff];

describe('constants', () => {
  it('match RFC 7143', () => {
    expect(BHS_LENGTH).toBe(48);
    expect(DIGEST_LENGTH).toBe(4);
    expect(RESERVED_TAG).toBe(0xffffffff);
    expect(Opcode).toEqual({
      NOP_OUT: 0x00,
      SCSI_COMMAND: 0x01,
      TASK_MGMT_REQUEST: 0x02,
      LOGIN_REQUEST: 0x03,
      TEXT_REQUEST: 0x04,
      DATA_OUT: 0x05,
      LOGOUT_REQUEST: 0x06,
      SNACK_REQUEST: 0x10,
      NOP_IN: 0x20,
      SCSI_RESPONSE: 0x21,
      TASK_MGMT_RESPONSE: 0x22,
      LOGIN_RESPONSE: 0x23,
      TEXT_RESPONSE: 0x24,
      DATA_IN: 0x25,
      LOGOUT_RESPONSE: 0x26,
      R2T: 0x31,
      ASYNC_MESSAGE: 0x32,
      REJECT: 0x3f,
    });
    expect(ResidualFlag).toEqual({ OVERFLOW: 0x04, UNDERFLOW: 0x02 });
    expect(ScsiCmdFlags).toEqual({ FINAL: 0x80, READ: 0x40, WRITE: 0x20, ATTR_MASK: 0x07 });
    expect(Field).toEqual({
      LUN: 8,
      ITT: 16,
      EDTL: 20,
      CMD_SN: 24,
      EXP_STAT_SN: 28,
      CDB: 32,
      TTT: 20,
      DATA_SN: 36,
      BUFFER_OFFSET: 40,
      RTT: 20,
      REF_CMD_SN: 32,
      EXP_DATA_SN: 36,
      ISID: 8,
      TSIH: 14,
      CID: 20,
    });
  });
});

describe('integer helpers', () => {
  it('u32/putU32 are big-endian and unsigned', () => {
    const b = new Uint8Array(8);
    putU32(b, 2, 0x01020304);
    expect([...b]).toEqual([0, 0, 1, 2, 3, 4, 0, 0]);
    expect(u32(b, 2)).toBe(0x01020304);
    putU32(b, 1, 0xfffffffe);
    expect([...b.subarray(1, 5)]).toEqual([0xff, 0xff, 0xff, 0xfe]);
    expect(u32(b, 1)).toBe(4294967294);
    putU32(b, 0, 0x80000000);
    expect(u32(b, 0)).toBe(2147483648);
  });

  it('u16/putU16 are big-endian', () => {
    const b = new Uint8Array(4);
    putU16(b, 1, 0xbeef);
    expect([...b]).toEqual([0, 0xbe, 0xef, 0]);
    expect(u16(b, 1)).toBe(0xbeef);
    putU16(b, 0, 0x12345); // only the low 16 bits
    expect(u16(b, 0)).toBe(0x2345);
  });

  it.each([
    [0, 0],
    [1, 3],
    [2, 2],
    [3, 1],
    [4, 0],
    [5, 3],
    [47, 1],
    [48, 0],
    [8191, 1],
    [0xffffff, 1],
  ])('pad4(%s) = %s', (n, p) => {
    expect(pad4(n)).toBe(p);
    expect((n + pad4(n)) % 4).toBe(0);
  });
});

// ---------------------------------------------------------------------------
// Accessors on initiator PDUs built by hand.

function pduAt(hex: string): Uint8Array {
  const body = Buffer.from(hex.replace(/\s+/g, ''), 'hex');
  expect(body.length).toBe(48);
  const b = new Uint8Array(O + 48 + 8).fill(JUNK);
  b.set(body, O);
  return b;
}

describe('accessors on initiator PDUs', () => {
  it('SCSI Command: the RFC 3720 B.4 READ(10) example', () => {
    const b = pduAt(`
      01 c0 00 00 00 00 00 00 00 00 00 00 00 00 00 00
      14 00 00 00 00 00 04 00 00 00 00 14 00 00 00 18
      28 00 00 00 00 00 00 00 02 00 00 00 00 00 00 00`);
    expect(opcodeOf(b, O)).toBe(Opcode.SCSI_COMMAND);
    expect(isImmediate(b, O)).toBe(false);
    expect(finalBit(b, O)).toBe(true);
    expect(b[O + 1]! & ScsiCmdFlags.READ).toBe(ScsiCmdFlags.READ);
    expect(b[O + 1]! & ScsiCmdFlags.WRITE).toBe(0);
    expect(b[O + 1]! & ScsiCmdFlags.ATTR_MASK).toBe(0);
    expect(ahsLength(b, O)).toBe(0);
    expect(dataSegmentLength(b, O)).toBe(0);
    expect(decodeLun(b, O + Field.LUN)).toBe(0);
    expect(itt(b, O)).toBe(0x14000000);
    expect(u32(b, O + Field.ITT)).toBe(0x14000000);
    expect(u32(b, O + Field.EDTL)).toBe(1024);
    expect(u32(b, O + Field.CMD_SN)).toBe(0x14);
    expect(u32(b, O + Field.EXP_STAT_SN)).toBe(0x18);
    expect(b[O + Field.CDB]).toBe(0x28);
    expect(u16(b, O + Field.CDB + 7)).toBe(2);
  });

  it('SCSI Command: immediate WRITE with AHS, immediate data and a flat-space LUN', () => {
    const b = pduAt(`
      41 a2 00 00 02 00 02 00 41 2c 00 00 00 00 00 00
      de ad be ef 00 01 00 00 80 00 00 10 90 00 00 20
      2a 00 00 00 10 00 00 00 80 00 00 00 00 00 00 00`);
    expect(opcodeOf(b, O)).toBe(Opcode.SCSI_COMMAND);
    expect(isImmediate(b, O)).toBe(true);
    expect(finalBit(b, O)).toBe(true);
    expect(b[O + 1]! & ScsiCmdFlags.WRITE).toBe(ScsiCmdFlags.WRITE);
    expect(b[O + 1]! & ScsiCmdFlags.READ).toBe(0);
    expect(b[O + 1]! & ScsiCmdFlags.ATTR_MASK).toBe(2);
    expect(ahsLength(b, O)).toBe(8);
    expect(dataSegmentLength(b, O)).toBe(512);
    expect(decodeLun(b, O + Field.LUN)).toBe(300);
    expect(itt(b, O)).toBe(0xdeadbeef);
    expect(u32(b, O + Field.EDTL)).toBe(0x10000);
    expect(u32(b, O + Field.CMD_SN)).toBe(0x80000010);
    expect(u32(b, O + Field.EXP_STAT_SN)).toBe(0x90000020);
    expect([...b.subarray(O + Field.CDB, O + Field.CDB + 10)]).toEqual([
      0x2a, 0, 0, 0, 0x10, 0, 0, 0, 0x80, 0,
    ]);
  });

  it('Data-Out', () => {
    const b = pduAt(`
      05 80 00 00 00 ff ff fc 00 07 00 00 00 00 00 00
      00 00 00 09 00 00 00 07 00 00 00 00 00 00 00 31
      00 00 00 00 00 00 00 02 00 01 40 00 00 00 00 00`);
    expect(opcodeOf(b, O)).toBe(Opcode.DATA_OUT);
    expect(isImmediate(b, O)).toBe(false);
    expect(finalBit(b, O)).toBe(true);
    expect(dataSegmentLength(b, O)).toBe(0xfffffc);
    expect(decodeLun(b, O + Field.LUN)).toBe(7);
    expect(itt(b, O)).toBe(9);
    expect(u32(b, O + Field.TTT)).toBe(7);
    expect(u32(b, O + Field.EXP_STAT_SN)).toBe(0x31);
    expect(u32(b, O + Field.DATA_SN)).toBe(2);
    expect(u32(b, O + Field.BUFFER_OFFSET)).toBe(0x14000);
  });

  it('Data-Out without the F bit', () => {
    const b = pduAt(`05 00 ${'00 '.repeat(46)}`);
    expect(opcodeOf(b, O)).toBe(Opcode.DATA_OUT);
    expect(finalBit(b, O)).toBe(false);
  });

  it('NOP-Out (immediate ping, reserved TTT)', () => {
    const b = pduAt(`
      40 80 00 00 00 00 00 04 00 00 00 00 00 00 00 00
      00 00 ab cd ff ff ff ff 00 00 01 00 00 00 02 00
      00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00`);
    expect(opcodeOf(b, O)).toBe(Opcode.NOP_OUT);
    expect(isImmediate(b, O)).toBe(true);
    expect(finalBit(b, O)).toBe(true);
    expect(dataSegmentLength(b, O)).toBe(4);
    expect(itt(b, O)).toBe(0xabcd);
    expect(u32(b, O + Field.TTT)).toBe(RESERVED_TAG);
    expect(u32(b, O + Field.CMD_SN)).toBe(0x100);
    expect(u32(b, O + Field.EXP_STAT_SN)).toBe(0x200);
  });

  it('Login Request (T=1, CSG=1, NSG=3)', () => {
    const b = pduAt(`
      43 87 00 00 00 00 01 a5 00 02 3d 00 00 01 12 34
      00 00 00 01 00 02 00 00 00 00 00 05 00 00 00 06
      00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00`);
    expect(opcodeOf(b, O)).toBe(Opcode.LOGIN_REQUEST);
    expect(isImmediate(b, O)).toBe(true);
    expect(finalBit(b, O)).toBe(true); // the T bit sits where F does
    expect((b[O + 1]! >> 2) & 3).toBe(1);
    expect(b[O + 1]! & 3).toBe(3);
    expect(dataSegmentLength(b, O)).toBe(0x1a5);
    expect([...b.subarray(O + Field.ISID, O + Field.ISID + 6)]).toEqual([0x00, 0x02, 0x3d, 0x00, 0x00, 0x01]);
    expect(u16(b, O + Field.TSIH)).toBe(0x1234);
    expect(itt(b, O)).toBe(1);
    expect(u16(b, O + Field.CID)).toBe(2);
    expect(u32(b, O + Field.CMD_SN)).toBe(5);
    expect(u32(b, O + Field.EXP_STAT_SN)).toBe(6);
  });

  it('Task Management Request (ABORT TASK)', () => {
    const b = pduAt(`
      42 81 00 00 00 00 00 00 00 03 00 00 00 00 00 00
      00 00 00 0a 00 00 00 0b 00 00 00 0c 00 00 00 0d
      00 00 00 0e 00 00 00 0f 00 00 00 00 00 00 00 00`);
    expect(opcodeOf(b, O)).toBe(Opcode.TASK_MGMT_REQUEST);
    expect(b[O + 1]! & 0x7f).toBe(1);
    expect(decodeLun(b, O + Field.LUN)).toBe(3);
    expect(itt(b, O)).toBe(0x0a);
    expect(u32(b, O + Field.RTT)).toBe(0x0b);
    expect(u32(b, O + Field.CMD_SN)).toBe(0x0c);
    expect(u32(b, O + Field.EXP_STAT_SN)).toBe(0x0d);
    expect(u32(b, O + Field.REF_CMD_SN)).toBe(0x0e);
    expect(u32(b, O + Field.EXP_DATA_SN)).toBe(0x0f);
  });

  it('opcodeOf strips the I bit and the reserved bit; ahsLength is in words', () => {
    const b = new Uint8Array(48);
    b[0] = 0xff;
    expect(opcodeOf(b, 0)).toBe(0x3f);
    expect(isImmediate(b, 0)).toBe(true);
    b[0] = 0x86;
    expect(opcodeOf(b, 0)).toBe(Opcode.LOGOUT_REQUEST);
    expect(isImmediate(b, 0)).toBe(false);
    b[4] = 0xff;
    expect(ahsLength(b, 0)).toBe(1020);
    b.set([0xff, 0xff, 0xff], 5);
    expect(dataSegmentLength(b, 0)).toBe(0xffffff);
  });
});

// ---------------------------------------------------------------------------
// Builders.

describe('buildScsiResponse', () => {
  it('writes every field at its RFC 7143 11.4 offset', () => {
    const b = area();
    buildScsiResponse(b, O, ITT, 0x02, ResidualFlag.UNDERFLOW, 0x00010203, 0xabcdef, SEQ, 0x0d0e0f10);
    expect(bhs(b)).toEqual(
      expected(
        [0, [0x21, 0x82, 0x00, 0x02, 0x00, 0xab, 0xcd, 0xef]],
        ITT_BYTES,
        SEQ_BYTES,
        [36, [0x0d, 0x0e, 0x0f, 0x10]],
        [44, [0x00, 0x01, 0x02, 0x03]],
      ),
    );
    expect(opcodeOf(b, O)).toBe(Opcode.SCSI_RESPONSE);
    expect(finalBit(b, O)).toBe(true);
    expect(dataSegmentLength(b, O)).toBe(0xabcdef);
    expect(itt(b, O)).toBe(ITT);
  });

  it('sets O for overflow and neither bit without a residual', () => {
    const b = area();
    buildScsiResponse(b, O, 1, 0, ResidualFlag.OVERFLOW, 512, 0, SEQ, 0);
    expect(b[O + 1]).toBe(0x84);
    expect(u32(b, O + 44)).toBe(512);
    buildScsiResponse(b, O, 1, 0, 0, 0, 0, SEQ, 0);
    expect(bhs(b)).toEqual(expected([0, [0x21, 0x80]], [16, [0, 0, 0, 1]], SEQ_BYTES));
  });
});

describe('buildDataIn', () => {
  it('intermediate PDU: no F, no S, status/StatSN/residual left zero, TTT reserved', () => {
    const b = area();
    buildDataIn(b, O, ITT, false, false, 0x02, ResidualFlag.UNDERFLOW, 999, 0x2000, 7, 0x00012000, SEQ);
    expect(bhs(b)).toEqual(
      expected(
        [0, [0x25, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00]],
        ITT_BYTES,
        [20, FFFF],
        [28, [0xb1, 0xb2, 0xb3, 0xb4, 0xc1, 0xc2, 0xc3, 0xc4]],
        [36, [0, 0, 0, 7]],
        [40, [0x00, 0x01, 0x20, 0x00]],
      ),
    );
  });

  it('final PDU without status sets only F', () => {
    const b = area();
    buildDataIn(b, O, ITT, true, false, 0, 0, 0, 0x100, 0x01020304, 0x80000000, SEQ);
    expect(bhs(b)).toEqual(
      expected(
        [0, [0x25, 0x80, 0, 0, 0, 0x00, 0x01, 0x00]],
        ITT_BYTES,
        [20, FFFF],
        [28, [0xb1, 0xb2, 0xb3, 0xb4, 0xc1, 0xc2, 0xc3, 0xc4]],
        [36, [1, 2, 3, 4]],
        [40, [0x80, 0, 0, 0]],
      ),
    );
  });

  it('with status: F and S set (even if final=false), status, StatSN, residual flag and count', () => {
    const b = area();
    buildDataIn(b, O, ITT, false, true, 0x00, ResidualFlag.OVERFLOW, 0x200, 0x1000, 3, 0x3000, SEQ);
    expect(bhs(b)).toEqual(
      expected(
        [0, [0x25, 0x85, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00]],
        ITT_BYTES,
        [20, FFFF],
        SEQ_BYTES,
        [36, [0, 0, 0, 3]],
        [40, [0, 0, 0x30, 0]],
        [44, [0, 0, 0x02, 0x00]],
      ),
    );
    buildDataIn(b, O, ITT, true, true, 0x02, ResidualFlag.UNDERFLOW, 1, 0, 0, 0, SEQ);
    expect(b[O + 1]).toBe(0x83);
    expect(b[O + 3]).toBe(0x02);
    expect(u32(b, O + 44)).toBe(1);
  });
});

describe('buildR2T', () => {
  it('writes every field at its RFC 7143 11.8 offset, copying the LUN field', () => {
    const lun = new Uint8Array([9, 9, 9, 0x41, 0x2c, 0, 0, 0, 0, 0, 0x77, 9]);
    const b = area();
    buildR2T(b, O, lun, 3, ITT, 0x55667788, 3, 0x10000, 0x40000, SEQ);
    expect(bhs(b)).toEqual(
      expected(
        [0, [0x31, 0x80, 0, 0, 0, 0, 0, 0]],
        [8, [0x41, 0x2c, 0, 0, 0, 0, 0, 0x77]],
        ITT_BYTES,
        [20, [0x55, 0x66, 0x77, 0x88]],
        SEQ_BYTES,
        [36, [0, 0, 0, 3]],
        [40, [0, 1, 0, 0]],
        [44, [0, 4, 0, 0]],
      ),
    );
    expect(dataSegmentLength(b, O)).toBe(0);
  });
});

describe('buildNopIn', () => {
  it('reply to a NOP-Out: echoes LUN and ITT, TTT reserved', () => {
    const lun = new Uint8Array([0, 5, 0, 0, 0, 0, 0, 0]);
    const b = area();
    buildNopIn(b, O, lun, 0, 0xabcd, RESERVED_TAG, 4, SEQ);
    expect(bhs(b)).toEqual(
      expected(
        [0, [0x20, 0x80, 0, 0, 0, 0, 0, 4]],
        [8, [0, 5]],
        [16, [0, 0, 0xab, 0xcd]],
        [20, FFFF],
        SEQ_BYTES,
      ),
    );
  });

  it('target ping: no LUN, ITT reserved, TTT set', () => {
    const b = area();
    buildNopIn(b, O, null, 0, RESERVED_TAG, 0x0000beef, 0, SEQ);
    expect(bhs(b)).toEqual(expected([0, [0x20, 0x80]], [16, FFFF], [20, [0, 0, 0xbe, 0xef]], SEQ_BYTES));
  });
});

describe('buildTextResponse', () => {
  it('final: F set, C clear', () => {
    const b = area();
    buildTextResponse(b, O, true, false, ITT, RESERVED_TAG, 0x123, SEQ);
    expect(bhs(b)).toEqual(
      expected([0, [0x24, 0x80, 0, 0, 0, 0, 0x01, 0x23]], ITT_BYTES, [20, FFFF], SEQ_BYTES),
    );
  });

  it('continued: C set, F clear, TTT for the continuation', () => {
    const b = area();
    buildTextResponse(b, O, false, true, ITT, 0x00000042, 8192, SEQ);
    expect(bhs(b)).toEqual(
      expected([0, [0x24, 0x40, 0, 0, 0, 0, 0x20, 0x00]], ITT_BYTES, [20, [0, 0, 0, 0x42]], SEQ_BYTES),
    );
  });
});

describe('buildLoginResponse', () => {
  const isid = new Uint8Array([0x80, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xee, 0xee]);

  it('writes every field at its RFC 7143 11.13 offset (T=1, CSG=1, NSG=3)', () => {
    const b = area();
    buildLoginResponse(b, O, true, false, 1, 3, 0x00, 0x00, isid, 0x1234, ITT, 0, 0, 0x1ff, SEQ);
    expect(bhs(b)).toEqual(
      expected(
        [0, [0x23, 0x87, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff]],
        [8, [0x80, 0x12, 0x34, 0x56, 0x78, 0x9a, 0x12, 0x34]],
        ITT_BYTES,
        SEQ_BYTES,
      ),
    );
  });

  it('CSG/NSG bits, C bit, versions and status class/detail', () => {
    const b = area();
    buildLoginResponse(b, O, true, false, 0, 1, 0, 0, isid, 0, ITT, 0, 0, 0, SEQ);
    expect(b[O + 1]).toBe(0x81);
    buildLoginResponse(b, O, false, true, 1, 0, 0, 0, isid, 0, ITT, 0, 0, 0, SEQ);
    expect(b[O + 1]).toBe(0x44);
    buildLoginResponse(b, O, false, false, 3, 3, 0x05, 0x02, isid, 0xffff, ITT, 0x02, 0x01, 0, SEQ);
    expect(bhs(b)).toEqual(
      expected(
        [0, [0x23, 0x0f, 0x05, 0x02]],
        [8, [0x80, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xff, 0xff]],
        ITT_BYTES,
        SEQ_BYTES,
        [36, [0x02, 0x01]],
      ),
    );
  });
});

describe('buildLogoutResponse', () => {
  it('writes response, Time2Wait and Time2Retain at RFC 7143 11.15 offsets', () => {
    const b = area();
    buildLogoutResponse(b, O, ITT, LogoutResponse.CID_NOT_FOUND, 2, 20, SEQ);
    expect(bhs(b)).toEqual(
      expected([0, [0x26, 0x80, 0x01]], ITT_BYTES, SEQ_BYTES, [40, [0x00, 0x02, 0x00, 0x14]]),
    );
  });
});

describe('buildTmfResponse', () => {
  it('writes the response at byte 2 (RFC 7143 11.6)', () => {
    const b = area();
    buildTmfResponse(b, O, ITT, TmfResponse.FUNCTION_REJECTED, SEQ);
    expect(bhs(b)).toEqual(expected([0, [0x22, 0x80, 0xff]], ITT_BYTES, SEQ_BYTES));
  });
});

describe('buildReject', () => {
  it('writes reason, DSL 48 and the reserved ITT (RFC 7143 11.17)', () => {
    const b = area();
    buildReject(b, O, RejectReason.INVALID_PDU_FIELD, SEQ);
    expect(bhs(b)).toEqual(expected([0, [0x3f, 0x80, 0x09, 0, 0, 0, 0, 48]], [16, FFFF], SEQ_BYTES));
    expect(dataSegmentLength(b, O)).toBe(BHS_LENGTH);
  });
});

describe('buildAsyncMessage', () => {
  it('writes event and parameters at RFC 7143 11.9 offsets', () => {
    const b = area();
    buildAsyncMessage(b, O, AsyncEvent.LOGOUT_REQUEST, 0x0a0b, 0x0c0d, 0x0e0f, 0x10, SEQ);
    expect(bhs(b)).toEqual(
      expected([0, [0x32, 0x80, 0, 0, 0, 0, 0, 0x10]], [16, FFFF], SEQ_BYTES, [
        36,
        [0x01, 0x00, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f],
      ]),
    );
  });
});

// ---------------------------------------------------------------------------
// LUN field.

describe('LUN encode/decode', () => {
  it('round-trips 0..16383 at an offset, without touching neighbours', () => {
    const b = new Uint8Array(3 + 8 + 3);
    for (let lun = 0; lun <= 16383; lun++) {
      b.fill(0xcc);
      encodeLun(b, 3, lun);
      expect(decodeLun(b, 3)).toBe(lun);
      if (lun < 256) {
        expect(b[3]).toBe(0);
        expect(b[4]).toBe(lun);
      } else {
        expect(b[3]).toBe(0x40 | (lun >> 8));
        expect(b[4]).toBe(lun & 0xff);
      }
      for (let i = 5; i < 11; i++) expect(b[i]).toBe(0);
      expect([b[0], b[1], b[2], b[11], b[12], b[13]]).toEqual([0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc]);
    }
  });

  it.each([
    [0, [0, 0]],
    [5, [0x00, 0x05]],
    [255, [0x00, 0xff]],
    [256, [0x41, 0x00]],
    [300, [0x41, 0x2c]],
    [16383, [0x7f, 0xff]],
  ])('encodes %s as %j followed by six zero bytes', (lun, first) => {
    const b = new Uint8Array(8).fill(0x55);
    encodeLun(b, 0, lun);
    expect([...b]).toEqual([...first, 0, 0, 0, 0, 0, 0]);
  });

  it.each([16384, 65535, -1, 1.5, Number.NaN])('refuses to encode %s', (lun) => {
    expect(() => encodeLun(new Uint8Array(8), 0, lun)).toThrow(RangeError);
  });

  it('decodes flat-space addressing of small LUNs too', () => {
    expect(decodeLun(new Uint8Array([0x40, 0x05, 0, 0, 0, 0, 0, 0]), 0)).toBe(5);
    expect(decodeLun(new Uint8Array([0x40, 0x00, 0, 0, 0, 0, 0, 0]), 0)).toBe(0);
  });

  it.each([
    ['peripheral, bus 1', [0x01, 0x05, 0, 0, 0, 0, 0, 0]],
    ['peripheral, bus 63', [0x3f, 0x00, 0, 0, 0, 0, 0, 0]],
    ['logical unit addressing (10b)', [0x80, 0x01, 0, 0, 0, 0, 0, 0]],
    ['extended addressing (11b)', [0xc0, 0x00, 0, 0, 0, 0, 0, 0]],
    ['extended flat space (0xD2)', [0xd2, 0x00, 0x01, 0x00, 0, 0, 0, 0]],
    ['well-known LUN (0xC1)', [0xc1, 0x01, 0, 0, 0, 0, 0, 0]],
    ['two-level, peripheral second level', [0x00, 0x01, 0x00, 0x02, 0, 0, 0, 0]],
    ['two-level, flat second level', [0x40, 0x05, 0x40, 0x01, 0, 0, 0, 0]],
    ['four-level', [0, 1, 0, 1, 0, 1, 0, 1]],
  ])('rejects %s', (_name, bytes) => {
    expect(decodeLun(new Uint8Array(bytes), 0)).toBe(-1);
  });

  it('rejects a non-zero byte in any of positions 2..7', () => {
    for (let pos = 2; pos < 8; pos++) {
      for (const v of [0x01, 0x80, 0xff]) {
        const b = new Uint8Array(10);
        encodeLun(b, 1, 7); // LUN field at offset 1
        expect(decodeLun(b, 1)).toBe(7);
        b[1 + pos] = v;
        expect(decodeLun(b, 1)).toBe(-1);
        const flat = new Uint8Array(10);
        encodeLun(flat, 1, 4000);
        flat[1 + pos] = v;
        expect(decodeLun(flat, 1)).toBe(-1);
      }
    }
  });
});
