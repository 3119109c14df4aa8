/**
 * Persistent reservations (SPC-4 5.14, 6.15, 6.16) and SPC-2 RESERVE/RELEASE through the
 * LUN pipeline: conflict table, every PR OUT service action, PR IN data, persistence.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { LogicalUnit } from '../../../../src/workers/lun/logical-unit.ts';
import { PR_ACCESS } from '../../../../src/workers/lun/opcode-registry.ts';
import { cdb10, tempDir } from '../helpers.ts';
import {
  cmdAs,
  moveParams,
  openPrLu,
  prin,
  prout,
  readKeys,
  tid,
  tur,
} from './helpers.ts';

const SA = { REGISTER: 0, RESERVE: 1, RELEASE: 2, CLEAR: 3, PREEMPT: 4, PAA: 5, RIEK: 6, MOVE: 7, RLR: 8 } as const;
const GOOD = 0x00;
const CHECK = 0x02;
const CONFLICT = 0x18;

const READ10 = cdb10(0x28, 0, 1);
const WRITE10 = cdb10(0x2a, 0, 1);
const MODE_SENSE6 = [0x1a, 0, 0x3f, 0, 255, 0];
const SYNC10 = cdb10(0x35, 0, 0);

let lus: LogicalUnit[] = [];
let cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const lu of lus) await lu.close();
  for (const c of cleanups) c();
  lus = [];
  cleanups = [];
});

async function lu(stateDir?: string): Promise<LogicalUnit> {
  const l = await openPrLu(stateDir);
  lus.push(l);
  return l;
}

async function register(l: LogicalUnit, nexus: number, k: number | bigint, flags = 0): Promise<void> {
  // REGISTER AND IGNORE EXISTING KEY
  const c = await prout(l, nexus, SA.RIEK, { saKey: k, flags });
  expect(c.status).toBe(GOOD);
}

describe('conflict check: SPC-4 table 62 / SBC-4 table 13', () => {
  // holder = nexus 1, registrant = nexus 2, unregistered = nexus 3
  // expected per type: [registrant read, registrant write, unregistered read, unregistered write]
  const TABLE: [string, number, [boolean, boolean, boolean, boolean]][] = [
    ['Write Exclusive', 1, [true, false, true, false]],
    ['Exclusive Access', 3, [false, false, false, false]],
    ['Write Exclusive - Registrants Only', 5, [true, true, true, false]],
    ['Exclusive Access - Registrants Only', 6, [true, true, false, false]],
    ['Write Exclusive - All Registrants', 7, [true, true, true, false]],
    ['Exclusive Access - All Registrants', 8, [true, true, false, false]],
  ];
  for (const [name, type, [regRead, regWrite, unRead, unWrite]] of TABLE) {
    it(`${name} (${type}h)`, async () => {
      const l = await lu();
      await register(l, 1, 0x11);
      await register(l, 2, 0x22);
      expect((await prout(l, 1, SA.RESERVE, { key: 0x11, type })).status).toBe(GOOD);
      const expectAccess = async (nexus: number, cdb: number[], allowed: boolean, dataOut?: Buffer) => {
        const c = await cmdAs(l, nexus, cdb, dataOut ? { dataOut } : { dataLength: 512 });
        expect(c.status, `nexus ${nexus} cdb ${cdb[0]!.toString(16)}`).toBe(allowed ? GOOD : CONFLICT);
        if (!allowed) expect(c.senseLength).toBe(0); // RESERVATION CONFLICT has no sense
      };
      const data = Buffer.alloc(512, 0x5a);
      // holder: everything
      await expectAccess(1, READ10, true);
      await expectAccess(1, WRITE10, true, data);
      await expectAccess(2, READ10, regRead);
      await expectAccess(2, WRITE10, regWrite, data);
      await expectAccess(2, SYNC10, regWrite);
      await expectAccess(2, MODE_SENSE6, regRead);
      await expectAccess(3, READ10, unRead);
      await expectAccess(3, WRITE10, unWrite, data);
      await expectAccess(3, MODE_SENSE6, unRead);
      // ALWAYS class: TEST UNIT READY, INQUIRY, READ CAPACITY, PR IN from anyone
      expect((await tur(l, 3)).status).toBe(GOOD);
      expect((await cmdAs(l, 3, [0x12, 0, 0, 0, 36, 0], { dataLength: 36 })).status).toBe(GOOD);
      expect((await cmdAs(l, 3, cdb10(0x25, 0, 0), { dataLength: 8 })).status).toBe(GOOD);
      expect((await prin(l, 3, 0)).status).toBe(GOOD);
    });
  }

  it('classifies by CDB where SBC-4 says so', () => {
    const b = (a: number[]) => Buffer.from([...a, ...new Array(16 - a.length).fill(0)]);
    const classOf = (cdb: Buffer): number => PR_ACCESS.get(cdb);
    expect(classOf(b([0x1e, 0, 0, 0, 0, 0]))).toBe(0); // PREVENT ALLOW, PREVENT=0
    expect(classOf(b([0x1e, 0, 0, 0, 1, 0]))).toBe(2);
    expect(classOf(b([0x1b, 0, 0, 0, 1, 0]))).toBe(0); // START STOP UNIT START=1
    expect(classOf(b([0x1b, 0, 0, 0, 0, 0]))).toBe(2); // stop
    expect(classOf(b([0x9e, 0x10]))).toBe(0); // READ CAPACITY(16)
    expect(classOf(b([0x9e, 0x12]))).toBe(1); // GET LBA STATUS
    expect(classOf(b([0xa3, 0x0a]))).toBe(0); // REPORT TARGET PORT GROUPS
    expect(classOf(b([0xa3, 0x0c]))).toBe(1); // REPORT SUPPORTED OPERATION CODES
    expect(classOf(b([0xee]))).toBe(2); // unknown: conflict
  });

  it('no reservation: registrations alone never conflict', async () => {
    const l = await lu();
    await register(l, 1, 1);
    expect((await cmdAs(l, 3, WRITE10, { dataOut: Buffer.alloc(512) })).status).toBe(GOOD);
  });
});

describe('PERSISTENT RESERVE OUT', () => {
  it('REGISTER: key checks, generation, unregister', async () => {
    const l = await lu();
    expect(await readKeys(l)).toEqual({ generation: 0, keys: [] });
    // unregistered with a non-zero RESERVATION KEY: conflict
    expect((await prout(l, 1, SA.REGISTER, { key: 5, saKey: 6 })).status).toBe(CONFLICT);
    // SA key zero from an unregistered nexus: GOOD, nothing happens
    expect((await prout(l, 1, SA.REGISTER, { saKey: 0 })).status).toBe(GOOD);
    expect((await readKeys(l)).generation).toBe(0);
    expect((await prout(l, 1, SA.REGISTER, { saKey: 0xabc })).status).toBe(GOOD);
    expect(await readKeys(l)).toEqual({ generation: 1, keys: [0xabcn] });
    // registered, wrong key: conflict; right key: change
    expect((await prout(l, 1, SA.REGISTER, { key: 1, saKey: 2 })).status).toBe(CONFLICT);
    expect((await prout(l, 1, SA.REGISTER, { key: 0xabc, saKey: 0xdef })).status).toBe(GOOD);
    expect(await readKeys(l)).toEqual({ generation: 2, keys: [0xdefn] });
    // REGISTER AND IGNORE EXISTING KEY ignores the key
    expect((await prout(l, 1, SA.RIEK, { key: 99, saKey: 0x123 })).status).toBe(GOOD);
    expect(await readKeys(l)).toEqual({ generation: 3, keys: [0x123n] });
    // unregister
    expect((await prout(l, 1, SA.REGISTER, { key: 0x123, saKey: 0 })).status).toBe(GOOD);
    expect(await readKeys(l)).toEqual({ generation: 4, keys: [] });
    // the same initiator through another target port is another I_T nexus
    await register(l, 1, 7);
    await register(l, 4, 8);
    expect((await readKeys(l)).keys).toEqual([7n, 8n]);
  });

  it('parameter list checks', async () => {
    const l = await lu();
    // not 24 bytes without SPEC_I_PT
    let c = await prout(l, 1, SA.REGISTER, { saKey: 1, raw: Buffer.alloc(28) });
    expect(c.status).toBe(CHECK);
    expect(c.senseTriple).toEqual([0x5, 0x1a, 0x00]);
    // announced longer than sent
    c = await prout(l, 1, SA.REGISTER, { saKey: 1, paramLength: 24, raw: Buffer.alloc(20) });
    expect(c.senseTriple).toEqual([0x5, 0x1a, 0x00]);
    // reserved bit in byte 20
    c = await prout(l, 1, SA.REGISTER, { saKey: 1, flags: 0x10 });
    expect(c.senseTriple).toEqual([0x5, 0x26, 0x00]);
    expect(c.fieldPointer).toEqual({ sksv: true, cd: false, bpv: true, bit: 4, field: 20 });
    // SPEC_I_PT with RESERVE
    c = await prout(l, 1, SA.RESERVE, { flags: 0x08, type: 1, transportIds: [tid('iqn.x', '000000000001')] });
    expect(c.senseTriple).toEqual([0x5, 0x26, 0x00]);
    expect(c.fieldPointer.field).toBe(20);
    expect(c.fieldPointer.bit).toBe(3);
    // invalid TYPE / SCOPE for RESERVE
    await register(l, 1, 1);
    c = await prout(l, 1, SA.RESERVE, { key: 1, type: 2 });
    expect(c.senseTriple).toEqual([0x5, 0x24, 0x00]);
    expect(c.fieldPointer).toEqual({ sksv: true, cd: true, bpv: true, bit: 3, field: 2 });
    c = await prout(l, 1, SA.RESERVE, { key: 1, type: 1, scope: 1 });
    expect(c.fieldPointer).toEqual({ sksv: true, cd: true, bpv: true, bit: 7, field: 2 });
    // unsupported service action
    c = await prout(l, 1, 9, {});
    expect(c.senseTriple).toEqual([0x5, 0x24, 0x00]);
  });

  it('RESERVE and RELEASE: ownership, same type, wrong type, generation unchanged', async () => {
    const l = await lu();
    await register(l, 1, 1);
    await register(l, 2, 2);
    const g = (await readKeys(l)).generation;
    expect((await prout(l, 3, SA.RESERVE, { key: 0, type: 1 })).status).toBe(CONFLICT); // unregistered
    expect((await prout(l, 1, SA.RESERVE, { key: 9, type: 1 })).status).toBe(CONFLICT); // wrong key
    expect((await prout(l, 1, SA.RESERVE, { key: 1, type: 1 })).status).toBe(GOOD);
    expect((await prout(l, 1, SA.RESERVE, { key: 1, type: 1 })).status).toBe(GOOD); // again
    expect((await prout(l, 1, SA.RESERVE, { key: 1, type: 3 })).status).toBe(CONFLICT); // other type
    expect((await prout(l, 2, SA.RESERVE, { key: 2, type: 1 })).status).toBe(CONFLICT); // other nexus
    let r = (await prin(l, 1, 1)).dataIn;
    expect(r.readUInt32BE(4)).toBe(16);
    expect(r.readBigUInt64BE(8)).toBe(1n);
    expect(r[21]).toBe(0x01);
    // RELEASE by a non-holder: GOOD, nothing changes
    expect((await prout(l, 2, SA.RELEASE, { key: 2, type: 1 })).status).toBe(GOOD);
    // wrong type: INVALID RELEASE OF PERSISTENT RESERVATION
    const c = await prout(l, 1, SA.RELEASE, { key: 1, type: 3 });
    expect(c.senseTriple).toEqual([0x5, 0x26, 0x04]);
    expect((await prout(l, 1, SA.RELEASE, { key: 1, type: 1 })).status).toBe(GOOD);
    r = (await prin(l, 1, 1)).dataIn;
    expect(r.readUInt32BE(4)).toBe(0);
    expect((await readKeys(l)).generation).toBe(g);
  });

  it('RELEASE of a registrants-only reservation: RESERVATIONS RELEASED to other registrants', async () => {
    const l = await lu();
    await register(l, 1, 1);
    await register(l, 2, 2);
    await prout(l, 1, SA.RESERVE, { key: 1, type: 5 });
    await prout(l, 1, SA.RELEASE, { key: 1, type: 5 });
    const ua = await tur(l, 2);
    expect(ua.senseTriple).toEqual([0x6, 0x2a, 0x04]);
    expect((await tur(l, 1)).status).toBe(GOOD); // not the issuer
    expect((await tur(l, 3)).status).toBe(GOOD); // not registered
  });

  it('all registrants: every registrant holds; READ RESERVATION key 0; ends with the last registrant', async () => {
    const l = await lu();
    await register(l, 1, 1);
    await register(l, 2, 2);
    expect((await prout(l, 1, SA.RESERVE, { key: 1, type: 7 })).status).toBe(GOOD);
    expect((await prout(l, 2, SA.RESERVE, { key: 2, type: 7 })).status).toBe(GOOD); // a holder too
    const r = (await prin(l, 1, 1)).dataIn;
    expect(r.readBigUInt64BE(8)).toBe(0n);
    await prout(l, 1, SA.REGISTER, { key: 1, saKey: 0 });
    expect((await prin(l, 1, 1)).dataIn.readUInt32BE(4)).toBe(16);
    await prout(l, 2, SA.REGISTER, { key: 2, saKey: 0 });
    expect((await prin(l, 1, 1)).dataIn.readUInt32BE(4)).toBe(0);
  });

  it('unregistering the holder releases the reservation', async () => {
    const l = await lu();
    await register(l, 1, 1);
    await register(l, 2, 2);
    await prout(l, 1, SA.RESERVE, { key: 1, type: 6 });
    await prout(l, 1, SA.REGISTER, { key: 1, saKey: 0 });
    // registrants-only: the other registrant is told
    expect((await tur(l, 2)).senseTriple).toEqual([0x6, 0x2a, 0x04]);
    expect((await prin(l, 2, 1)).dataIn.readUInt32BE(4)).toBe(0);
  });

  it('CLEAR: everything goes, generation +1, RESERVATIONS PREEMPTED to others', async () => {
    const l = await lu();
    await register(l, 1, 1);
    await register(l, 2, 2);
    await prout(l, 1, SA.RESERVE, { key: 1, type: 3 });
    const g = (await readKeys(l)).generation;
    expect((await prout(l, 3, SA.CLEAR, { key: 0 })).status).toBe(CONFLICT);
    expect((await prout(l, 2, SA.CLEAR, { key: 2 })).status).toBe(GOOD);
    expect(await readKeys(l, 2)).toEqual({ generation: g + 1, keys: [] });
    expect((await tur(l, 1)).senseTriple).toEqual([0x6, 0x2a, 0x03]);
    expect((await tur(l, 2)).status).toBe(GOOD);
    expect((await tur(l, 3)).status).toBe(GOOD);
  });

  it('PREEMPT: registrations only (no reservation)', async () => {
    const l = await lu();
    await register(l, 1, 1);
    await register(l, 2, 2);
    const g = (await readKeys(l)).generation;
    expect((await prout(l, 2, SA.PREEMPT, { key: 2, saKey: 9, type: 3 })).status).toBe(CONFLICT); // no such key
    const c = await prout(l, 2, SA.PREEMPT, { key: 2, saKey: 0, type: 3 });
    expect(c.senseTriple).toEqual([0x5, 0x26, 0x00]);
    expect(c.fieldPointer.field).toBe(8);
    expect((await prout(l, 2, SA.PREEMPT, { key: 2, saKey: 1, type: 3 })).status).toBe(GOOD);
    expect(await readKeys(l, 2)).toEqual({ generation: g + 1, keys: [2n] });
    expect((await tur(l, 1)).senseTriple).toEqual([0x6, 0x2a, 0x05]);
    expect((await prin(l, 1, 1)).dataIn.readUInt32BE(4)).toBe(0);
  });

  it('PREEMPT the holder: reservation moves with the new type; type change tells the rest', async () => {
    const l = await lu();
    await register(l, 1, 1);
    await register(l, 2, 2);
    await register(l, 3, 3);
    await prout(l, 1, SA.RESERVE, { key: 1, type: 1 });
    expect((await prout(l, 2, SA.PREEMPT, { key: 2, saKey: 1, type: 3 })).status).toBe(GOOD);
    const r = (await prin(l, 2, 1)).dataIn;
    expect(r.readBigUInt64BE(8)).toBe(2n);
    expect(r[21]).toBe(0x03);
    expect((await readKeys(l, 2)).keys).toEqual([2n, 3n]);
    expect((await tur(l, 1)).senseTriple).toEqual([0x6, 0x2a, 0x05]);
    expect((await tur(l, 3)).senseTriple).toEqual([0x6, 0x2a, 0x04]);
    expect((await tur(l, 2)).status).toBe(GOOD);
    // the preempted nexus is now an unregistered one: writes conflict
    expect((await cmdAs(l, 1, WRITE10, { dataOut: Buffer.alloc(512) })).status).toBe(CONFLICT);
  });

  it('PREEMPT of an all-registrants reservation with SA key 0', async () => {
    const l = await lu();
    await register(l, 1, 1);
    await register(l, 2, 2);
    await prout(l, 1, SA.RESERVE, { key: 1, type: 8 });
    expect((await prout(l, 2, SA.PREEMPT, { key: 2, saKey: 0, type: 1 })).status).toBe(GOOD);
    expect((await readKeys(l, 2)).keys).toEqual([2n]);
    const r = (await prin(l, 2, 1)).dataIn;
    expect(r.readBigUInt64BE(8)).toBe(2n);
    expect(r[21]).toBe(0x01);
  });

  it('PREEMPT AND ABORT waits for the preempted nexus in-flight commands', async () => {
    const l = await lu();
    await register(l, 1, 1);
    await register(l, 2, 2);
    await prout(l, 1, SA.RESERVE, { key: 1, type: 1 });
    // A command of nexus 1 still in the task set.
    const inflight = { nexus: 1, attribute: 1 } as never;
    expect(l.taskSet.admit(inflight)).toBe(true);
    let done = false;
    const p = prout(l, 2, SA.PAA, { key: 2, saKey: 1, type: 1 }).then((c) => {
      done = true;
      return c;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(done).toBe(false);
    l.taskSet.remove(inflight);
    const c = await p;
    expect(c.status).toBe(GOOD);
    expect((await readKeys(l, 2)).keys).toEqual([2n]);
  });

  it('REGISTER with SPEC_I_PT registers the TransportIDs (formats 00b and 01b)', async () => {
    const l = await lu();
    const c = await prout(l, 1, SA.REGISTER, {
      saKey: 0x77,
      flags: 0x08,
      transportIds: [tid('iqn.2026-11.test:b', '400000000002'), tid('iqn.2026-11.test:c')],
    });
    expect(c.status).toBe(GOOD);
    expect(await readKeys(l)).toEqual({ generation: 1, keys: [0x77n, 0x77n, 0x77n] });
    // nexus 2 and 3 are registered now (3 through the name-only TransportID)
    expect((await prout(l, 2, SA.REGISTER, { key: 0x77, saKey: 0x78 })).status).toBe(GOOD);
    expect((await prout(l, 3, SA.RESERVE, { key: 0x77, type: 1 })).status).toBe(GOOD);
    // an already registered I_T nexus in a TransportID: INVALID FIELD IN PARAMETER LIST at it
    await prout(l, 1, SA.REGISTER, { key: 0x77, saKey: 0 });
    const bad = await prout(l, 1, SA.REGISTER, { saKey: 1, flags: 0x08, transportIds: [tid('iqn.2026-11.test:b', '400000000002')] });
    expect(bad.senseTriple).toEqual([0x5, 0x26, 0x00]);
    expect(bad.fieldPointer.field).toBe(28);
    // SPEC_I_PT from a registered nexus: INVALID FIELD IN CDB
    const reg = await prout(l, 2, SA.REGISTER, { key: 0x78, saKey: 1, flags: 0x08, transportIds: [tid('iqn.z', '000000000009')] });
    expect(reg.senseTriple).toEqual([0x5, 0x24, 0x00]);
    // a malformed TransportID (wrong protocol)
    const t = tid('iqn.q', '000000000001');
    t[0] = 0x41;
    const proto = await prout(l, 4, SA.REGISTER, { saKey: 1, flags: 0x08, transportIds: [t] });
    expect(proto.senseTriple).toEqual([0x5, 0x26, 0x00]);
    expect(proto.fieldPointer).toMatchObject({ field: 28, bit: 3 });
    // TRANSPORTID PARAMETER DATA LENGTH disagreeing with the list length
    const p = Buffer.concat([Buffer.alloc(28), tid('iqn.q', '000000000001')]);
    p[20] = 0x08;
    p.writeUInt32BE(4, 24);
    expect((await prout(l, 4, SA.REGISTER, { raw: p })).senseTriple).toEqual([0x5, 0x1a, 0x00]);
  });

  // SPC-4 6.16.3.1: ALL_TG_PT = 1 registers "as if the same registration request had been
  // received individually through each target port". Nexus 1 and 4 are initiator port A
  // through target ports 1 and 2; the LU is exported through both.
  describe('ALL_TG_PT = 1: one registration per target port', () => {
    it('READ KEYS lists the key once per target port, READ FULL STATUS one descriptor per I_T nexus', async () => {
      const l = await lu();
      const g = (await readKeys(l)).generation;
      await register(l, 1, 5, 0x04);
      // one PR OUT: PRgeneration + 1; two registered I_T nexuses (SPC-4 6.15.2)
      expect(await readKeys(l)).toEqual({ generation: g + 1, keys: [5n, 5n] });
      // nexus 4 is registered by the same command
      expect((await prout(l, 4, SA.RESERVE, { key: 5, type: 3 })).status).toBe(GOOD);
      const fs = (await prin(l, 1, 3)).dataIn;
      expect(fs.readUInt32BE(4)).toBe(2 * (24 + 40));
      // port 1 first (where the command arrived), not the holder; ALL_TG_PT = 0 in each
      // descriptor: it describes one I_T nexus (SPC-4 6.15.5)
      expect([fs[8 + 12], fs.readUInt16BE(8 + 18)]).toEqual([0x00, 1]);
      expect([fs[72 + 12], fs[72 + 13], fs.readUInt16BE(72 + 18)]).toEqual([0x01, 0x03, 2]);
      expect(fs.subarray(72 + 28, 72 + 28 + 35).toString()).toBe('iqn.2026-11.test:a,i,0x400000000001');
    });

    it('only the I_T nexus that reserved is the holder (SPC-4 5.14.10)', async () => {
      const l = await lu();
      await register(l, 1, 5, 0x04);
      expect((await prout(l, 1, SA.RESERVE, { key: 5, type: 1 })).status).toBe(GOOD);
      const data = Buffer.alloc(512, 0x11);
      expect((await cmdAs(l, 1, WRITE10, { dataOut: data })).status).toBe(GOOD);
      // nexus 4: registrant, not holder; under Write Exclusive it reads but may not write
      expect((await cmdAs(l, 4, WRITE10, { dataOut: data })).status).toBe(CONFLICT);
      expect((await cmdAs(l, 4, READ10, { dataLength: 512 })).status).toBe(GOOD);
      // RESERVE from it conflicts (5.14.9), RELEASE is GOOD without effect (5.14.11.2)
      expect((await prout(l, 4, SA.RESERVE, { key: 5, type: 1 })).status).toBe(CONFLICT);
      expect((await prout(l, 4, SA.RELEASE, { key: 5, type: 1 })).status).toBe(GOOD);
      const r = (await prin(l, 4, 1)).dataIn;
      expect([r.readUInt32BE(4), r.readBigUInt64BE(8), r[21]]).toEqual([16, 5n, 0x01]);
      // the holder releases
      expect((await prout(l, 1, SA.RELEASE, { key: 5, type: 1 })).status).toBe(GOOD);
      expect((await prin(l, 4, 1)).dataIn.readUInt32BE(4)).toBe(0);
    });

    it('unregistering with ALL_TG_PT = 0 removes one I_T nexus, with ALL_TG_PT = 1 every one', async () => {
      const l = await lu();
      await register(l, 1, 5, 0x04);
      expect((await prout(l, 1, SA.REGISTER, { key: 5, saKey: 0 })).status).toBe(GOOD);
      const g = (await readKeys(l)).generation;
      expect((await readKeys(l)).keys).toEqual([5n]);
      // nexus 1 is unregistered now, nexus 4 is not
      expect((await prout(l, 1, SA.RESERVE, { key: 5, type: 1 })).status).toBe(CONFLICT);
      expect((await prout(l, 4, SA.RESERVE, { key: 5, type: 1 })).status).toBe(GOOD);
      await register(l, 1, 5, 0x04); // re-register A through both ports (port 2 keeps its key)
      expect(await readKeys(l)).toEqual({ generation: g + 1, keys: [5n, 5n] });
      // ALL_TG_PT = 1 unregister from nexus 1: both registrations go, and with the one on
      // port 2 its reservation (SPC-4 5.14.11.2.3)
      expect((await prout(l, 1, SA.REGISTER, { key: 5, saKey: 0, flags: 0x04 })).status).toBe(GOOD);
      expect(await readKeys(l)).toEqual({ generation: g + 2, keys: [] });
      expect((await prin(l, 1, 1)).dataIn.readUInt32BE(4)).toBe(0);
      // nothing registered: an ALL_TG_PT unregister is GOOD and changes nothing
      expect((await prout(l, 4, SA.RIEK, { saKey: 0, flags: 0x04 })).status).toBe(GOOD);
      expect((await readKeys(l)).generation).toBe(g + 2);
    });

    it('REGISTER with ALL_TG_PT = 1 checks the key of every target port; REGISTER AND IGNORE EXISTING KEY does not', async () => {
      const l = await lu();
      await register(l, 1, 7); // ALL_TG_PT = 0: port 1 only
      expect(await readKeys(l)).toMatchObject({ keys: [7n] });
      // through port 2 (unregistered there), RESERVATION KEY 0 conflicts with port 1's key
      expect((await prout(l, 4, SA.REGISTER, { key: 0, saKey: 9, flags: 0x04 })).status).toBe(CONFLICT);
      // and RESERVATION KEY 7 with the unregistered nexus on port 2
      expect((await prout(l, 4, SA.REGISTER, { key: 7, saKey: 9, flags: 0x04 })).status).toBe(CONFLICT);
      expect((await readKeys(l)).keys).toEqual([7n]);
      // REGISTER AND IGNORE EXISTING KEY: port 1's key is replaced, port 2 registered
      await register(l, 4, 9, 0x04);
      expect((await readKeys(l)).keys).toEqual([9n, 9n]);
      // REGISTER with ALL_TG_PT = 1 and the key: replaces both
      expect((await prout(l, 1, SA.REGISTER, { key: 9, saKey: 0xa, flags: 0x04 })).status).toBe(GOOD);
      expect((await readKeys(l)).keys).toEqual([0xan, 0xan]);
      // SPEC_I_PT from a nexus registered on any of the ports: INVALID FIELD IN CDB
      const c = await prout(l, 1, SA.REGISTER, { key: 0xa, saKey: 0xb, flags: 0x0c, transportIds: [tid('iqn.2026-11.test:c', '400000000003')] });
      expect(c.senseTriple).toEqual([0x5, 0x24, 0x00]);
    });

    it('SPEC_I_PT with ALL_TG_PT = 1 registers the TransportIDs through every target port too', async () => {
      const l = await lu();
      const c = await prout(l, 2, SA.REGISTER, { saKey: 0x22, flags: 0x0c, transportIds: [tid('iqn.2026-11.test:c', '400000000003')] });
      expect(c.status).toBe(GOOD);
      expect((await readKeys(l)).keys).toEqual([0x22n, 0x22n, 0x22n, 0x22n]);
      const fs = (await prin(l, 1, 3)).dataIn;
      const ports: [string, number][] = [];
      for (let at = 8; at < fs.length; at += 24 + fs.readUInt32BE(at + 20))
        ports.push([fs.subarray(at + 28, at + 28 + 18).toString(), fs.readUInt16BE(at + 18)]);
      expect(ports).toEqual([
        ['iqn.2026-11.test:b', 1],
        ['iqn.2026-11.test:b', 2],
        ['iqn.2026-11.test:c', 1],
        ['iqn.2026-11.test:c', 2],
      ]);
      // C through port 1 is registered
      expect((await prout(l, 3, SA.REGISTER, { key: 0x22, saKey: 0x33 })).status).toBe(GOOD);
    });
  });

  it('REGISTER AND MOVE moves the reservation to the TransportID nexus', async () => {
    const l = await lu();
    await register(l, 1, 1);
    // not the holder: conflict
    let c = await prout(l, 1, SA.MOVE, { raw: moveParams(1, 0x55, 1, tid('iqn.2026-11.test:b', '400000000002')) });
    expect(c.status).toBe(CONFLICT);
    await prout(l, 1, SA.RESERVE, { key: 1, type: 3 });
    // the issuer itself: INVALID FIELD IN PARAMETER LIST
    c = await prout(l, 1, SA.MOVE, { raw: moveParams(1, 0x55, 1, tid('iqn.2026-11.test:a', '400000000001')) });
    expect(c.senseTriple).toEqual([0x5, 0x26, 0x00]);
    expect(c.fieldPointer.field).toBe(24);
    // SA key zero
    c = await prout(l, 1, SA.MOVE, { raw: moveParams(1, 0, 1, tid('iqn.2026-11.test:b', '400000000002')) });
    expect(c.fieldPointer.field).toBe(8);
    const g = (await readKeys(l)).generation;
    // move with UNREG
    c = await prout(l, 1, SA.MOVE, { raw: moveParams(1, 0x55, 1, tid('iqn.2026-11.test:b', '400000000002'), 0x02) });
    expect(c.status).toBe(GOOD);
    expect(await readKeys(l)).toEqual({ generation: g + 1, keys: [0x55n] });
    const r = (await prin(l, 2, 1)).dataIn;
    expect(r.readBigUInt64BE(8)).toBe(0x55n);
    expect(r[21]).toBe(0x03);
    expect((await cmdAs(l, 2, WRITE10, { dataOut: Buffer.alloc(512) })).status).toBe(GOOD);
    expect((await cmdAs(l, 1, READ10, { dataLength: 512 })).status).toBe(CONFLICT);
    // short parameter list
    c = await prout(l, 2, SA.MOVE, { raw: Buffer.alloc(20) });
    expect(c.senseTriple).toEqual([0x5, 0x1a, 0x00]);
  });

  it('REPLACE LOST RESERVATION re-establishes the issuer reservation', async () => {
    const l = await lu();
    await register(l, 1, 1);
    expect((await prout(l, 3, SA.RLR, { key: 0, saKey: 1, type: 1 })).status).toBe(CONFLICT);
    expect((await prout(l, 1, SA.RLR, { key: 1, saKey: 9, type: 5 })).status).toBe(GOOD);
    const r = (await prin(l, 1, 1)).dataIn;
    expect(r.readBigUInt64BE(8)).toBe(9n);
    expect(r[21]).toBe(0x05);
  });
});

describe('PERSISTENT RESERVE IN', () => {
  it('REPORT CAPABILITIES', async () => {
    const l = await lu();
    const d = (await prin(l, 1, 2)).dataIn;
    expect([...d]).toEqual([0, 8, 0x1d, 0xb0, 0xea, 0x01, 0, 0]);
    await register(l, 1, 1, 0x01);
    expect((await prin(l, 1, 2)).dataIn[3]).toBe(0xb1); // PTPL_A
  });

  it('READ FULL STATUS bytes', async () => {
    const l = await lu();
    await register(l, 1, 0x1122334455667788n);
    await register(l, 2, 2);
    await prout(l, 1, SA.RESERVE, { key: 0x1122334455667788n, type: 1 });
    const c = await prin(l, 1, 3);
    const d = c.dataIn;
    // "iqn.2026-11.test:a,i,0x400000000001" = 35 bytes + NUL = 36: TransportID 40 bytes
    const tidA = tid('iqn.2026-11.test:a', '400000000001');
    expect(tidA.length).toBe(40);
    expect(d.readUInt32BE(0)).toBe(2); // PRgeneration
    expect(d.readUInt32BE(4)).toBe(2 * (24 + 40));
    const first = d.subarray(8, 8 + 64);
    const expected = Buffer.alloc(64);
    expected.writeBigUInt64BE(0x1122334455667788n, 0);
    expected[12] = 0x01; // R_HOLDER
    expected[13] = 0x01; // LU_SCOPE | Write Exclusive
    expected.writeUInt16BE(1, 18); // RELATIVE TARGET PORT IDENTIFIER
    expected.writeUInt32BE(40, 20);
    tidA.copy(expected, 24);
    expect(first.toString('hex')).toBe(expected.toString('hex'));
    const second = d.subarray(72, 136);
    expect(second.readBigUInt64BE(0)).toBe(2n);
    expect(second[12]).toBe(0);
    expect(second[13]).toBe(0);
    expect(second.subarray(28, 28 + 35).toString()).toBe('iqn.2026-11.test:b,i,0x400000000002');
    // truncated to the allocation length, ADDITIONAL LENGTH still the whole list
    const short = await prin(l, 1, 3, 16);
    expect(short.dataInLength).toBe(16);
    expect(short.dataIn.readUInt32BE(4)).toBe(128);
  });

  it('service actions beyond 3 are INVALID FIELD IN CDB', async () => {
    const l = await lu();
    for (let sa = 4; sa < 0x20; sa++) expect((await prin(l, 1, sa)).senseTriple).toEqual([0x5, 0x24, 0x00]);
  });
});

describe('APTPL: persistence across a restart (SPC-4 5.14.5)', () => {
  it('APTPL = 1 survives, APTPL = 0 does not', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    let l = await openPrLu(dir);
    await register(l, 1, 1, 0x01);
    await register(l, 2, 2, 0x01);
    await prout(l, 1, SA.RESERVE, { key: 1, type: 3 });
    const before = await readKeys(l);
    await l.close();
    l = await lu(dir);
    // Same keys; PRgeneration restarts at 0 on power on (SPC-4 6.15.2).
    expect(await readKeys(l)).toEqual({ ...before, generation: 0 });
    const r = (await prin(l, 1, 1)).dataIn;
    expect(r.readBigUInt64BE(8)).toBe(1n);
    expect(r[21]).toBe(0x03);
    expect((await cmdAs(l, 3, READ10, { dataLength: 512 })).status).toBe(CONFLICT);
    // the last REGISTER sets APTPL = 0: nothing survives the next restart
    await prout(l, 2, SA.REGISTER, { key: 2, saKey: 3, flags: 0 });
    await l.close();
    lus = lus.filter((x) => x !== l);
    l = await lu(dir);
    expect(await readKeys(l)).toEqual({ generation: 0, keys: [] });
    expect((await prin(l, 1, 1)).dataIn.readUInt32BE(4)).toBe(0);
  });
});

describe('SPC-2 RESERVE / RELEASE', () => {
  const RESERVE6 = [0x16, 0, 0, 0, 0, 0];
  const RELEASE6 = [0x17, 0, 0, 0, 0, 0];
  const RESERVE10 = [0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0];

  it('one holder; others conflict except INQUIRY / REQUEST SENSE / RELEASE', async () => {
    const l = await lu();
    expect((await cmdAs(l, 1, RESERVE6)).status).toBe(GOOD);
    expect((await cmdAs(l, 1, RESERVE6)).status).toBe(GOOD);
    expect((await cmdAs(l, 2, RESERVE6)).status).toBe(CONFLICT);
    expect((await cmdAs(l, 2, RESERVE10)).status).toBe(CONFLICT);
    expect((await cmdAs(l, 2, MODE_SENSE6, { dataLength: 255 })).status).toBe(CONFLICT);
    expect((await cmdAs(l, 1, MODE_SENSE6, { dataLength: 255 })).status).toBe(GOOD);
    expect((await cmdAs(l, 2, [0x12, 0, 0, 0, 36, 0], { dataLength: 36 })).status).toBe(GOOD);
    expect((await cmdAs(l, 2, RELEASE6)).status).toBe(GOOD); // no effect
    expect((await cmdAs(l, 2, READ10, { dataLength: 512 })).status).toBe(CONFLICT);
    // PR commands conflict while an SPC-2 reservation exists, from the holder too
    expect((await prin(l, 1, 0)).status).toBe(CONFLICT);
    expect((await prout(l, 1, SA.REGISTER, { saKey: 1 })).status).toBe(CONFLICT);
    expect((await cmdAs(l, 1, RELEASE6)).status).toBe(GOOD);
    expect((await cmdAs(l, 2, RESERVE6)).status).toBe(GOOD);
    expect((await cmdAs(l, 2, [0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0])).status).toBe(GOOD);
    expect((await cmdAs(l, 1, READ10, { dataLength: 512 })).status).toBe(GOOD);
  });

  it('third-party RESERVE is INVALID FIELD IN CDB', async () => {
    const l = await lu();
    const c = await cmdAs(l, 1, [0x16, 0x10, 0, 0, 0, 0]);
    expect(c.senseTriple).toEqual([0x5, 0x24, 0x00]);
  });

  it('I_T nexus loss and LU reset release it', async () => {
    const { nexusLost } = await import('../../../../src/workers/lun/nexus-events.ts');
    const { prLogicalUnitReset } = await import('../../../../src/workers/lun/pr/engine.ts');
    const l = await lu();
    await cmdAs(l, 1, RESERVE6);
    nexusLost(l, 1, l.nexuses.get(1));
    await new Promise((r) => setTimeout(r, 10));
    expect((await cmdAs(l, 2, RESERVE6)).status).toBe(GOOD);
    await prLogicalUnitReset(l);
    expect((await cmdAs(l, 3, RESERVE6)).status).toBe(GOOD);
  });

  it('with registrations (CRH = 1): RESERVE conflicts unless the nexus holds the PR', async () => {
    const l = await lu();
    await register(l, 1, 1);
    expect((await cmdAs(l, 1, RESERVE6)).status).toBe(CONFLICT); // registered, no reservation
    await prout(l, 1, SA.RESERVE, { key: 1, type: 1 });
    expect((await cmdAs(l, 1, RESERVE6)).status).toBe(GOOD); // holder: GOOD, no effect
    expect((await cmdAs(l, 1, RELEASE6)).status).toBe(GOOD);
    expect((await cmdAs(l, 2, RESERVE6)).status).toBe(CONFLICT);
    expect((await prin(l, 1, 1)).dataIn.readUInt32BE(4)).toBe(16); // PR untouched
  });

  it('with registrations (CRH = 1): a registrant that does not hold a registrants-only reservation conflicts', async () => {
    // SPC-4 5.14.3 tolerates RESERVE / RELEASE from a persistent reservation holder
    // only; under Write Exclusive - Registrants Only that is the nexus that reserved
    // (SPC-4 5.14.10), under All Registrants every registrant.
    const l = await lu();
    await register(l, 1, 1);
    await register(l, 2, 2);
    await prout(l, 1, SA.RESERVE, { key: 1, type: 5 });
    expect((await cmdAs(l, 2, RESERVE6)).status).toBe(CONFLICT);
    expect((await cmdAs(l, 2, RELEASE6)).status).toBe(CONFLICT);
    expect((await cmdAs(l, 1, RESERVE6)).status).toBe(GOOD);
    await prout(l, 1, SA.RELEASE, { key: 1, type: 5 });
    await prout(l, 1, SA.RESERVE, { key: 1, type: 7 });
    // REQUEST SENSE takes the RESERVATIONS RELEASED unit attention of that RELEASE.
    expect((await cmdAs(l, 2, [0x03, 0, 0, 0, 18, 0], { dataLength: 18 })).dataIn[12]).toBe(0x2a);
    expect((await cmdAs(l, 2, RESERVE6)).status).toBe(GOOD);
    expect((await cmdAs(l, 2, RELEASE6)).status).toBe(GOOD);
    expect((await prin(l, 1, 1)).dataIn.readUInt32BE(4)).toBe(16); // PR untouched
  });
});
