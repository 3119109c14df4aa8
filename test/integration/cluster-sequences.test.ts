/**
 * Real cluster sequences against the real target (issue 5): what failover clusters and
 * multipath stacks actually send, driven by the test initiator with several
 * InitiatorNames and through two portals (two target ports) of one target.
 *
 * 1. Windows failover cluster arbitration (the ClusPrep/cluster disk PR sequence:
 *    REGISTER AND IGNORE EXISTING KEY per node, RESERVE Write Exclusive - Registrants
 *    Only, periodic defense, PREEMPT by the challenger).
 * 2. PREEMPT AND ABORT while the preempted host has a deep pipeline of WRITEs in flight
 *    (fencing: no write of the fenced host may land after the PREEMPT AND ABORT completed).
 * 3. Restart with APTPL = 1 (state survives) and APTPL = 0 (state is gone).
 * 4. Multipath: one host through both portals, registering with ALL_TG_PT = 1
 *    (Linux dm-multipath "all_tg_pt yes") and per path (Windows MSDSM style).
 *
 * Every PERSISTENT RESERVE CDB and parameter list is built here (SPC-4 6.15 / 6.16).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { cleanup, freePort, startWithConfig, startTarget, type StartedTarget } from '../helpers/target.ts';
import {
  type Initiator,
  Opcode,
  RESERVED_TAG,
  Status,
  TEST_UNIT_READY,
  connectAndLogin,
  nopOutBhs,
  read10,
  scsiCommandBhs,
  write10,
  type Pdu,
  type ScsiResult,
} from '../helpers/initiator.ts';
import { u16, u32 } from '../../src/shared/iscsi/pdu.ts';
import { ScsiStatus } from '../../src/shared/scsi/command.ts';
import { prinCdb, proutCdb, proutParams, type ProutFields } from '../helpers/scsi-pr.ts';
import { PersistentReserveIn, PersistentReserveOut } from '../../src/shared/scsi/opcodes.ts';

// ---------------------------------------------------------------------------------------------
// SCSI constants (SAM-5 / SPC-4)

/** SAM-5 5.3.1 status codes not in the helper. */
const { RESERVATION_CONFLICT, TASK_ABORTED } = ScsiStatus;

/** PERSISTENT RESERVE OUT service actions (SPC-4 6.16.2 table 213). */
const SA = PersistentReserveOut;

/** PERSISTENT RESERVE IN service actions (SPC-4 6.15.1 table 199). */
const IN = PersistentReserveIn;

/** Persistent reservation TYPE (SPC-4 6.16.3.4 table 218). */
const TYPE = { WE: 0x1, EA: 0x3, WERO: 0x5, EARO: 0x6, WEAR: 0x7, EAAR: 0x8 } as const;

/** Unit attention sense (SPC-4 annex F): [sense key, ASC, ASCQ]. */
const UA_REGISTRATIONS_PREEMPTED: [number, number, number] = [0x06, 0x2a, 0x05];

// ---------------------------------------------------------------------------------------------
// CDBs and parameter lists

/** Fixed-format sense (SPC-4 4.5.3): [SENSE KEY, ASC, ASCQ]. */
function senseOf(b: Buffer): [number, number, number] {
  return [b[2]! & 0x0f, b[12]!, b[13]!];
}

// ---------------------------------------------------------------------------------------------
// A node: one session of one initiator through one portal

interface Node {
  ini: Initiator;
  name: string;
}

const INI = (n: string): string => `iqn.2026-11.io.spindle.cluster:${n}`;

async function login(port: number, iqn: string, name: string, luns: number[], isid?: Buffer): Promise<Node> {
  const ini = await connectAndLogin(port, iqn, {
    initiatorName: INI(name),
    ...(isid === undefined ? {} : { isid }),
    keys: [
      ['MaxRecvDataSegmentLength', '262144'],
      ['InitialR2T', 'No'],
      ['ImmediateData', 'Yes'],
      ['FirstBurstLength', '262144'],
      ['MaxBurstLength', '1048576'],
    ],
  });
  // Make the nexus known to each LU and take whatever unit attention a new nexus has.
  for (const lun of luns) {
    let ok = false;
    for (let i = 0; i < 4 && !ok; i++)
      ok = (await ini.scsi(TEST_UNIT_READY, { edtl: 0, lun })).status === Status.GOOD;
    if (!ok) throw new Error(`${name}: TEST UNIT READY on LUN ${lun} never GOOD`);
  }
  return { ini, name };
}

async function prout(n: Node, lun: number, sa: number, type: number, f: ProutFields): Promise<ScsiResult> {
  return n.ini.scsi(proutCdb(sa, type), { lun, write: true, edtl: 24, data: proutParams(f) });
}

/** Expect GOOD (no sense). */
function good(r: ScsiResult, what: string): void {
  const sense = r.sense.length > 0 ? senseOf(r.sense) : null;
  expect({ what, status: r.status, sense }).toEqual({ what, status: Status.GOOD, sense: null });
}

/** Expect RESERVATION CONFLICT, which carries no sense data (SAM-5 5.3.1). */
function conflict(r: ScsiResult, what: string): void {
  expect({ what, status: r.status }).toEqual({ what, status: RESERVATION_CONFLICT });
  expect(r.sense.length, `${what}: RESERVATION CONFLICT carries no sense`).toBe(0);
}

function checkCondition(r: ScsiResult, want: [number, number, number], what: string): void {
  expect({ what, status: r.status, sense: senseOf(r.sense) }).toEqual({
    what,
    status: Status.CHECK_CONDITION,
    sense: want,
  });
}

interface Keys {
  generation: number;
  keys: bigint[];
}

/** READ KEYS (SPC-4 6.15.2 table 200): 0-3 PRGENERATION | 4-7 ADDITIONAL LENGTH | 8- keys. */
async function readKeys(n: Node, lun: number): Promise<Keys> {
  const r = await n.ini.scsi(prinCdb(IN.READ_KEYS), { lun, read: true, edtl: 8192 });
  good(r, `${n.name} READ KEYS`);
  const len = r.data.readUInt32BE(4);
  const keys: bigint[] = [];
  for (let at = 8; at < 8 + len; at += 8) keys.push(r.data.readBigUInt64BE(at));
  return { generation: r.data.readUInt32BE(0), keys };
}

interface Reservation {
  generation: number;
  /** null: no persistent reservation (ADDITIONAL LENGTH 0). */
  key: bigint | null;
  scope: number;
  type: number;
}

/**
 * READ RESERVATION (SPC-4 6.15.3 tables 201, 202): 0-3 PRGENERATION | 4-7 ADDITIONAL
 * LENGTH (0 or 16) | 8-15 RESERVATION KEY | 16-19 obsolete | 20 reserved | 21 SCOPE(7..4)
 * TYPE(3..0) | 22-23 obsolete.
 */
async function readReservation(n: Node, lun: number): Promise<Reservation> {
  const r = await n.ini.scsi(prinCdb(IN.READ_RESERVATION), { lun, read: true, edtl: 8192 });
  good(r, `${n.name} READ RESERVATION`);
  const len = r.data.readUInt32BE(4);
  if (len === 0) return { generation: r.data.readUInt32BE(0), key: null, scope: 0, type: 0 };
  expect(len, 'READ RESERVATION ADDITIONAL LENGTH').toBe(16);
  return {
    generation: r.data.readUInt32BE(0),
    key: r.data.readBigUInt64BE(8),
    scope: r.data[21]! >> 4,
    type: r.data[21]! & 0x0f,
  };
}

interface FullStatus {
  key: bigint;
  allTgPt: boolean;
  holder: boolean;
  type: number;
  rtpi: number;
  transportId: string;
}

/**
 * READ FULL STATUS (SPC-4 6.15.5 tables 210, 211): 0-3 PRGENERATION | 4-7 ADDITIONAL
 * LENGTH | descriptors: 0-7 KEY | 12 ALL_TG_PT(1) R_HOLDER(0) | 13 SCOPE TYPE |
 * 18-19 RELATIVE TARGET PORT IDENTIFIER | 20-23 ADDITIONAL DESCRIPTOR LENGTH | 24- TransportID
 * (iSCSI, SPC-4 7.6.4.6: 4-n iSCSI NAME [",i,0x" ISID], NUL terminated).
 */
async function readFullStatus(n: Node, lun: number): Promise<FullStatus[]> {
  const r = await n.ini.scsi(prinCdb(IN.READ_FULL_STATUS), { lun, read: true, edtl: 8192 });
  good(r, `${n.name} READ FULL STATUS`);
  const end = 8 + r.data.readUInt32BE(4);
  const out: FullStatus[] = [];
  for (let at = 8; at < end;) {
    const d = r.data.subarray(at);
    const tidLen = d.readUInt32BE(20);
    const tid = d.subarray(24, 24 + tidLen);
    const nul = tid.indexOf(0, 4);
    out.push({
      key: d.readBigUInt64BE(0),
      allTgPt: (d[12]! & 0x02) !== 0,
      holder: (d[12]! & 0x01) !== 0,
      type: d[13]! & 0x0f,
      rtpi: d.readUInt16BE(18),
      transportId: tid.toString('utf8', 4, nul < 0 ? tid.length : nul),
    });
    at += 24 + tidLen;
  }
  return out;
}

function blocksOf(data: Buffer, blockSize: number): Buffer {
  const n = data.length / blockSize;
  if (!Number.isInteger(n)) throw new Error('not whole blocks');
  return data;
}

async function writeBlocks(
  n: Node,
  lun: number,
  lba: number,
  data: Buffer,
  blockSize: number,
): Promise<ScsiResult> {
  return n.ini.scsi(write10(lba, blocksOf(data, blockSize).length / blockSize), {
    lun,
    write: true,
    edtl: data.length,
    data,
    timeoutMs: 15_000,
  });
}

async function readBlocks(
  n: Node,
  lun: number,
  lba: number,
  blocks: number,
  blockSize: number,
): Promise<ScsiResult> {
  return n.ini.scsi(read10(lba, blocks), { lun, read: true, edtl: blocks * blockSize, timeoutMs: 15_000 });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// The target: one target, two portals (two target ports), one LU per scenario

const RAM_BLOCK = 512;
const FILE_BLOCK = 4096;
const LUN_WINDOWS = 0;
const LUN_ABORT = 1;
const LUN_MPATH_LINUX = 2;
const LUN_MPATH_WINDOWS = 3;
const LUN_APTPL = 4;
const LUN_NO_APTPL = 5;
const LUN_APTPL_LAST = 6;
const LUN_ALL_TG_PT = 7;

let t: StartedTarget;
let port2 = 0;

beforeAll(async () => {
  port2 = await freePort();
  t = await startTarget({
    yaml: ({ port, iqn, dir }) => `
clusterId: cluster-seq
stateDir: ${dir}/state
logging: { level: info }
workers: { session: 2, lun: 2 }
devices:
  - name: quorum
    ram: { size: 16MiB }
  - name: data
    file: { path: ${dir}/data.img, size: 128MiB }
    blockSize: ${FILE_BLOCK}
    writeCache: writethrough
  - name: mpl
    ram: { size: 8MiB }
  - name: mpw
    ram: { size: 8MiB }
  - name: aptpl
    ram: { size: 8MiB }
  - name: noaptpl
    ram: { size: 8MiB }
  - name: aptpllast
    ram: { size: 8MiB }
  - name: alltgpt
    ram: { size: 8MiB }
targets:
  - iqn: ${iqn}
    portals: ['127.0.0.1:${port}', '127.0.0.1:${port2}']
    luns: { ${LUN_WINDOWS}: quorum, ${LUN_ABORT}: data, ${LUN_MPATH_LINUX}: mpl, ${LUN_MPATH_WINDOWS}: mpw, ${LUN_APTPL}: aptpl, ${LUN_NO_APTPL}: noaptpl, ${LUN_APTPL_LAST}: aptpllast, ${LUN_ALL_TG_PT}: alltgpt }
`,
  });
});

afterAll(async () => {
  await t?.stop();
  cleanup(t);
});

// ---------------------------------------------------------------------------------------------
// 1. Windows failover cluster arbitration

/**
 * Keys as the cluster disk driver builds them: a per-node part in the high half and a
 * constant cluster signature in the low 32 bits (Windows marks the keys it places so).
 */
const CLUSTER_SIG = 0x4d534654n; // "MSFT"-like signature in the low 32 bits
const keyOfNode = (node: number): bigint => (BigInt(node) << 32n) | CLUSTER_SIG;

describe('Windows failover cluster arbitration (REGISTER AND IGNORE, RESERVE WERO, defense, PREEMPT)', () => {
  it('arbitrates exactly as SPC-4 prescribes', async () => {
    const lun = LUN_WINDOWS;
    const KA = keyOfNode(1);
    const KB = keyOfNode(2);
    const a = await login(t.port, t.iqn, 'node-a', [lun]);
    const b = await login(t.port, t.iqn, 'node-b', [lun]);
    // C: a host outside the cluster that sees the LUN (never registers).
    const c = await login(t.port, t.iqn, 'outsider', [lun]);
    const blk = Buffer.alloc(RAM_BLOCK, 0x11);
    try {
      const k0 = await readKeys(c, lun);
      expect(k0.keys).toEqual([]);
      expect((await readReservation(c, lun)).key).toBeNull();
      const g0 = k0.generation;

      // Each node joins: REGISTER AND IGNORE EXISTING KEY with its own key (the
      // RESERVATION KEY field is ignored, SPC-4 6.16.2). PRgeneration +1 each (SPC-4 6.15.2).
      good(
        await prout(a, lun, SA.REGISTER_AND_IGNORE_EXISTING_KEY, 0, { key: 0xdeadn, saKey: KA }),
        'A register-ignore',
      );
      expect(await readKeys(c, lun)).toEqual({ generation: g0 + 1, keys: [KA] });
      good(await prout(b, lun, SA.REGISTER_AND_IGNORE_EXISTING_KEY, 0, { saKey: KB }), 'B register-ignore');
      expect(await readKeys(c, lun)).toEqual({ generation: g0 + 2, keys: [KA, KB] });

      // Registration alone reserves nothing: everybody may write.
      good(await writeBlocks(c, lun, 0, blk, RAM_BLOCK), 'C write before any reservation');

      // The owner reserves Write Exclusive - Registrants Only. RESERVE does not change
      // PRgeneration (SPC-4 6.15.2).
      good(await prout(a, lun, SA.RESERVE, TYPE.WERO, { key: KA }), 'A RESERVE WERO');
      expect(await readReservation(b, lun)).toEqual({
        generation: g0 + 2,
        key: KA,
        scope: 0,
        type: TYPE.WERO,
      });
      expect(await readReservation(c, lun)).toEqual({
        generation: g0 + 2,
        key: KA,
        scope: 0,
        type: TYPE.WERO,
      });

      // WERO (SPC-4 5.14.1 table 62, SBC-4 4.17 table 13): the holder and every registrant
      // may write; an unregistered I_T nexus may read but not write.
      good(await writeBlocks(a, lun, 1, blk, RAM_BLOCK), 'A (holder) write');
      good(await writeBlocks(b, lun, 2, blk, RAM_BLOCK), 'B (registrant) write under WERO');
      conflict(await writeBlocks(c, lun, 3, blk, RAM_BLOCK), 'C (unregistered) write under WERO');
      good(await readBlocks(c, lun, 0, 8, RAM_BLOCK), 'C (unregistered) read under WERO');
      good(await c.ini.scsi(TEST_UNIT_READY, { edtl: 0, lun }), 'C TUR');

      // Challenger tries to take it while the owner holds it: RESERVE from a registered
      // non-holder conflicts (SPC-4 5.14.9); with another node's key too (5.14.x: key
      // must match the nexus's registration); an unregistered nexus may not PREEMPT.
      conflict(await prout(b, lun, SA.RESERVE, TYPE.WERO, { key: KB }), 'B RESERVE while A holds');
      conflict(await prout(b, lun, SA.RESERVE, TYPE.WERO, { key: KA }), 'B RESERVE with A key');
      conflict(
        await prout(c, lun, SA.PREEMPT, TYPE.WERO, { key: 0n, saKey: KA }),
        'C (unregistered) PREEMPT',
      );
      conflict(
        await prout(c, lun, SA.REGISTER, 0, { key: KA, saKey: KA }),
        'C REGISTER with non-zero key while unregistered',
      );
      expect(await readKeys(c, lun)).toEqual({ generation: g0 + 2, keys: [KA, KB] });

      // The owner defends: every few seconds (Windows: ~3 s; shortened here) it
      // re-registers its key and re-reserves. Same key again: GOOD, and (SPC-4 6.15.2: every
      // REGISTER AND IGNORE EXISTING KEY that completes) PRgeneration + 1. RESERVE of the
      // same type by the holder: GOOD, no change (SPC-4 5.14.9).
      let gen = g0 + 2;
      for (let round = 0; round < 3; round++) {
        good(
          await prout(a, lun, SA.REGISTER_AND_IGNORE_EXISTING_KEY, 0, { saKey: KA }),
          `defense ${round}: register`,
        );
        gen += 1;
        good(await prout(a, lun, SA.RESERVE, TYPE.WERO, { key: KA }), `defense ${round}: reserve`);
        // The challenger watches: the owner's key is still there, it backs off.
        expect(await readKeys(b, lun)).toEqual({ generation: gen, keys: [KA, KB] });
        expect(await readReservation(b, lun)).toEqual({
          generation: gen,
          key: KA,
          scope: 0,
          type: TYPE.WERO,
        });
        await sleep(300);
      }

      // Node A hangs (stops defending; its session stays up, as a hung node's does). The
      // challenger preempts A's key and takes the reservation with the same type.
      good(await prout(b, lun, SA.PREEMPT, TYPE.WERO, { key: KB, saKey: KA }), 'B PREEMPT A');
      gen += 1; // PREEMPT increments PRgeneration (SPC-4 6.15.2)
      expect(await readKeys(c, lun)).toEqual({ generation: gen, keys: [KB] });
      expect(await readReservation(c, lun)).toEqual({ generation: gen, key: KB, scope: 0, type: TYPE.WERO });

      // The issuer gets no unit attention; neither does the unregistered outsider.
      good(await b.ini.scsi(TEST_UNIT_READY, { edtl: 0, lun }), 'B TUR after its PREEMPT');
      good(await c.ini.scsi(TEST_UNIT_READY, { edtl: 0, lun }), 'C TUR after PREEMPT');
      good(await writeBlocks(b, lun, 4, blk, RAM_BLOCK), 'B (new holder) write');
      conflict(await writeBlocks(c, lun, 5, blk, RAM_BLOCK), 'C write under the new reservation');

      // A wakes up. Its first command meets REGISTRATIONS PREEMPTED (SPC-4 5.14.11.4.3:
      // unit attention for every preempted I_T nexus), once.
      checkCondition(
        await a.ini.scsi(TEST_UNIT_READY, { edtl: 0, lun }),
        UA_REGISTRATIONS_PREEMPTED,
        'A first command after preemption',
      );
      good(await a.ini.scsi(TEST_UNIT_READY, { edtl: 0, lun }), 'A TUR after the UA');
      // A is now unregistered under WERO: reads yes, writes no.
      conflict(await writeBlocks(a, lun, 6, blk, RAM_BLOCK), 'A write after being preempted');
      good(await readBlocks(a, lun, 0, 8, RAM_BLOCK), 'A read after being preempted');
      // Its defense fails: RESERVE with its old key conflicts (not registered, 5.14.x),
      // REGISTER with its old key conflicts (unregistered: RESERVATION KEY must be 0, 5.14.7).
      conflict(await prout(a, lun, SA.RESERVE, TYPE.WERO, { key: KA }), 'A RESERVE with preempted key');
      conflict(await prout(a, lun, SA.REGISTER, 0, { key: KA, saKey: KA }), 'A REGISTER with preempted key');
      conflict(await prout(a, lun, SA.PREEMPT, TYPE.WERO, { key: KA, saKey: KB }), 'A counter-PREEMPT');
      expect(await readKeys(a, lun)).toEqual({ generation: gen, keys: [KB] });

      // A rejoins the cluster as a non-owner: REGISTER AND IGNORE, then it may write (WERO).
      good(await prout(a, lun, SA.REGISTER_AND_IGNORE_EXISTING_KEY, 0, { saKey: KA }), 'A rejoins');
      gen += 1;
      expect(await readKeys(c, lun)).toEqual({ generation: gen, keys: [KB, KA] });
      expect(await readReservation(a, lun)).toEqual({ generation: gen, key: KB, scope: 0, type: TYPE.WERO });
      good(await writeBlocks(a, lun, 6, blk, RAM_BLOCK), 'A (registrant again) write under WERO');
      conflict(await prout(a, lun, SA.RESERVE, TYPE.WERO, { key: KA }), 'A RESERVE while B holds');

      // Orderly end: the owner takes the disk offline and everyone unregisters.
      good(await prout(b, lun, SA.RELEASE, TYPE.WERO, { key: KB }), 'B RELEASE');
      // RELEASE of a registrants-only reservation: RESERVATIONS RELEASED (06/2A/04) for the
      // other registrants (SPC-4 5.14.11.2.2); not for the issuer.
      checkCondition(
        await a.ini.scsi(TEST_UNIT_READY, { edtl: 0, lun }),
        [0x06, 0x2a, 0x04],
        'A after B RELEASE',
      );
      good(await b.ini.scsi(TEST_UNIT_READY, { edtl: 0, lun }), 'B after its RELEASE');
      expect(await readReservation(c, lun)).toEqual({ generation: gen, key: null, scope: 0, type: 0 });
      good(await writeBlocks(c, lun, 7, blk, RAM_BLOCK), 'C write with no reservation');
      good(await prout(a, lun, SA.REGISTER, 0, { key: KA, saKey: 0n }), 'A unregisters');
      good(await prout(b, lun, SA.REGISTER, 0, { key: KB, saKey: 0n }), 'B unregisters');
      expect(await readKeys(c, lun)).toEqual({ generation: gen + 2, keys: [] });
    } finally {
      a.ini.close();
      b.ini.close();
      c.ini.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 2. PREEMPT AND ABORT against a deep pipeline of WRITEs

interface Outcome {
  status: number;
  sense: Buffer;
  at: number;
}

/**
 * Many SCSI commands outstanding on one session: one reader dispatches PDUs by ITT,
 * answers R2Ts and target pings. (Initiator.scsi() runs one command at a time.)
 */
class Pipeline {
  private readonly waiting = new Map<number, { data: Buffer; lun: number; resolve: (o: Outcome) => void }>();
  private running = false;
  error: Error | null = null;
  private readonly ini: Initiator;

  constructor(ini: Initiator) {
    this.ini = ini;
  }

  get outstanding(): number {
    return this.waiting.size;
  }

  /** Room in the CmdSN window (RFC 7143 4.2.2.1: CmdSN <= MaxCmdSN). */
  private windowOpen(): boolean {
    return ((this.ini.maxCmdSN - this.ini.cmdSN) | 0) >= 0;
  }

  /** Send WRITE(10) of `data` with all of it as immediate data when it fits. */
  async write(
    lun: number,
    lba: number,
    data: Buffer,
    blockSize: number,
  ): Promise<{ done: Promise<Outcome> }> {
    for (let i = 0; !this.windowOpen(); i++) {
      if (i > 1000) throw new Error('CmdSN window stayed closed');
      await sleep(5);
    }
    const ini = this.ini;
    const n = ini.negotiated;
    const itt = ini.allocItt();
    const cmdSN = ini.takeCmdSN();
    const imm = n.immediateData
      ? Math.min(data.length, n.firstBurstLength, n.targetMaxRecvDataSegmentLength)
      : 0;
    const unsolicitedEnd = n.initialR2T ? imm : Math.min(data.length, n.firstBurstLength);
    const done = new Promise<Outcome>((resolve) => this.waiting.set(itt, { data, lun, resolve }));
    ini.send(
      scsiCommandBhs({
        final: unsolicitedEnd === imm,
        write: true,
        attr: 1,
        lun,
        itt,
        edtl: data.length,
        cmdSN,
        expStatSN: ini.expStatSN,
        cdb: write10(lba, data.length / blockSize),
      }),
      data.subarray(0, imm),
    );
    if (unsolicitedEnd > imm) ini.sendDataOut(itt, lun, RESERVED_TAG, data, imm, unsolicitedEnd - imm);
    this.pump();
    return { done };
  }

  private pump(): void {
    if (this.running) return;
    this.running = true;
    void (async () => {
      try {
        while (this.waiting.size > 0) {
          const p: Pdu = await this.ini.nextPdu(20_000);
          if (p.opcode === Opcode.NOP_IN && p.itt === RESERVED_TAG && p.ttt !== RESERVED_TAG) {
            this.ini.send(
              nopOutBhs({
                immediate: true,
                itt: RESERVED_TAG,
                ttt: p.ttt,
                cmdSN: this.ini.cmdSN,
                expStatSN: this.ini.expStatSN,
              }),
            );
            continue;
          }
          const w = this.waiting.get(p.itt);
          if (w === undefined) continue;
          if (p.opcode === Opcode.R2T) {
            this.ini.sendDataOut(p.itt, w.lun, p.ttt, w.data, u32(p.bhs, 40), u32(p.bhs, 44));
          } else if (p.opcode === Opcode.SCSI_RESPONSE) {
            this.waiting.delete(p.itt);
            const sense =
              p.data.length >= 2 ? Buffer.from(p.data.subarray(2, 2 + u16(p.data, 0))) : Buffer.alloc(0);
            w.resolve({ status: p.bhs[3]!, sense, at: performance.now() });
          } else if (p.opcode === Opcode.REJECT) {
            throw new Error(`target rejected itt ${p.itt}`);
          }
        }
      } catch (err) {
        this.error = err as Error;
      } finally {
        this.running = false;
      }
    })();
  }
}

/** Block content: 'A'/'B' tag, writer's sequence number, LBA, then a fill byte. */
function pattern(tag: 'A' | 'B', seq: number, lba: number, blocks: number): Buffer {
  const b = Buffer.alloc(blocks * FILE_BLOCK, tag === 'A' ? 0xa5 : 0x5b);
  for (let i = 0; i < blocks; i++) {
    const o = i * FILE_BLOCK;
    b.write(tag === 'A' ? 'AAAA' : 'BBBB', o, 'latin1');
    b.writeUInt32BE(seq, o + 4);
    b.writeUInt32BE(lba + i, o + 8);
  }
  return b;
}

type BlockContent = { who: 'zero' } | { who: 'A' | 'B'; seq: number; lba: number } | { who: 'other' };

function classify(block: Buffer): BlockContent {
  const tag = block.toString('latin1', 0, 4);
  if (tag === 'AAAA' || tag === 'BBBB')
    return { who: tag === 'AAAA' ? 'A' : 'B', seq: block.readUInt32BE(4), lba: block.readUInt32BE(8) };
  return block.every((x) => x === 0) ? { who: 'zero' } : { who: 'other' };
}

describe('PREEMPT AND ABORT while the preempted host streams WRITEs', () => {
  /** Slots (one WRITE each) per run; each run has its own fresh (zero) region. */
  const RUN_SLOTS = 512;
  const WRITE_BLOCKS = 16; // 64 KiB per WRITE
  const DEPTH = 64;
  const READ_SLOTS = 16; // 1 MiB per READ / overwrite

  // Fence at different points of the stream: right at its start, and with a full pipeline.
  it.each([
    { run: 0, fenceAfterGood: 1 },
    { run: 1, fenceAfterGood: 32 },
    { run: 2, fenceAfterGood: 96 },
  ])(
    'no WRITE of the fenced host lands after PREEMPT AND ABORT completed (fence after $fenceAfterGood GOOD)',
    async ({ run, fenceAfterGood }) => {
      const lun = LUN_ABORT;
      const KA = 0xa100n + BigInt(run);
      const KB = 0xb200n + BigInt(run);
      const base = run * RUN_SLOTS; // first slot of this run
      const lbaOf = (slot: number): number => (base + slot) * WRITE_BLOCKS;
      const a = await login(t.port, t.iqn, `stream-a${run}`, [lun]);
      const b = await login(port2, t.iqn, `fencer-b${run}`, [lun]);
      try {
        good(await prout(a, lun, SA.REGISTER_AND_IGNORE_EXISTING_KEY, 0, { saKey: KA }), 'A register');
        good(await prout(b, lun, SA.REGISTER_AND_IGNORE_EXISTING_KEY, 0, { saKey: KB }), 'B register');
        good(await prout(a, lun, SA.RESERVE, TYPE.WE, { key: KA }), 'A RESERVE WE');
        // WE: a registrant that is not the holder may not write (SPC-4 table 62).
        conflict(
          await writeBlocks(b, lun, lbaOf(0), pattern('B', 0, lbaOf(0), 1), FILE_BLOCK),
          'B write under A WE',
        );

        // A streams: DEPTH WRITEs outstanding, each to its own slot, until one fails.
        const pipe = new Pipeline(a.ini);
        const outcomes: (Outcome | undefined)[] = [];
        const done: Promise<void>[] = [];
        let sent = 0;
        let stop = false;
        let goods = 0;
        const streamer = (async () => {
          for (let seq = 0; seq < RUN_SLOTS && !stop; seq++) {
            while (pipe.outstanding >= DEPTH && !stop) await sleep(1);
            if (stop) break;
            const pending = await pipe.write(
              lun,
              lbaOf(seq),
              pattern('A', seq, lbaOf(seq), WRITE_BLOCKS),
              FILE_BLOCK,
            );
            sent = seq + 1;
            done.push(
              pending.done.then((o) => {
                outcomes[seq] = o;
                if (o.status === Status.GOOD) goods++;
                else stop = true;
              }),
            );
          }
        })();

        for (let i = 0; goods < fenceAfterGood && i < 5000; i++) await sleep(1);
        expect(goods, 'A stream got going').toBeGreaterThanOrEqual(fenceAfterGood);
        // The streamer refills the window after a 1 ms timer: right after a burst of
        // completions the pipe can be empty for a moment. Send the PREEMPT AND ABORT while
        // WRITEs are outstanding (the race this test is about).
        for (let i = 0; pipe.outstanding === 0 && i < 2000; i++) await sleep(1);
        const inFlightAtPreempt = pipe.outstanding;
        const pa = await prout(b, lun, SA.PREEMPT_AND_ABORT, TYPE.WE, { key: KB, saKey: KA });
        const paDoneAt = performance.now();
        good(pa, 'B PREEMPT AND ABORT');
        const goodBeforePa = outcomes.filter(
          (o) => o !== undefined && o.status === Status.GOOD && o.at <= paDoneAt,
        ).length;
        // Slots A had sent by then (a completion already seen counts, whatever the bookkeeping order).
        let slotsAtPa = sent;
        outcomes.forEach((o, seq) => {
          if (o !== undefined && o.at <= paDoneAt) slotsAtPa = Math.max(slotsAtPa, seq + 1);
        });

        const snapshot = async (slots: number): Promise<Buffer> => {
          const parts: Buffer[] = [];
          for (let s = 0; s < slots; s += READ_SLOTS) {
            const n = Math.min(READ_SLOTS, slots - s);
            const r = await readBlocks(b, lun, lbaOf(s), n * WRITE_BLOCKS, FILE_BLOCK);
            good(r, `B read slots ${s}..${s + n}`);
            parts.push(r.data);
          }
          return Buffer.concat(parts);
        };
        // Right after GOOD, B reads everything A has sent so far (snapshot S1) ...
        const s1 = await snapshot(slotsAtPa);
        // ... and writes its own pattern over all of it (B now holds WE).
        for (let s = 0; s < slotsAtPa; s += READ_SLOTS) {
          const n = Math.min(READ_SLOTS, slotsAtPa - s);
          good(
            await writeBlocks(b, lun, lbaOf(s), pattern('B', s, lbaOf(s), n * WRITE_BLOCKS), FILE_BLOCK),
            `B overwrite slot ${s}`,
          );
        }

        // A's pipeline drains (bounded). With TAS = 0 (control mode page) an aborted command
        // may end without any status (SAM-5 5.6); those stay undefined.
        stop = true;
        await streamer;
        await Promise.race([Promise.all(done), sleep(10_000)]);
        expect(pipe.error, 'A pipeline reader').toBeNull();
        const s2 = await snapshot(Math.max(sent, slotsAtPa));

        // Outcomes: GOOD; or refused: RESERVATION CONFLICT without sense, or (once) the
        // UNIT ATTENTION REGISTRATIONS PREEMPTED; or aborted (TASK ABORTED / no status).
        let ua = 0;
        const failed = new Set<number>();
        for (let seq = 0; seq < sent; seq++) {
          const o = outcomes[seq];
          if (o === undefined || o.status === TASK_ABORTED) {
            failed.add(seq);
            continue;
          }
          if (o.status === Status.GOOD) continue;
          failed.add(seq);
          if (o.status === Status.CHECK_CONDITION) {
            expect(senseOf(o.sense), `A write ${seq}`).toEqual(UA_REGISTRATIONS_PREEMPTED);
            ua++;
          } else {
            expect(o.status, `A write ${seq} status`).toBe(RESERVATION_CONFLICT);
            expect(o.sense.length, `A write ${seq}: RESERVATION CONFLICT carries no sense`).toBe(0);
          }
        }
        expect(ua, 'REGISTRATIONS PREEMPTED is reported once').toBeLessThanOrEqual(1);

        const bad: string[] = [];
        const blockAt = (buf: Buffer, slot: number, i: number): BlockContent => {
          const at = (slot * WRITE_BLOCKS + i) * FILE_BLOCK;
          return classify(buf.subarray(at, at + FILE_BLOCK));
        };
        // S1: every GOOD write of A is there (it executed before PREEMPT AND ABORT
        // completed: SPC-4 5.14.11.4.5 / SAM-5 7.6: the preempted nexus's tasks are aborted,
        // none completes after the PREEMPT AND ABORT), and no block of a write that did not
        // complete GOOD was written.
        for (let seq = 0; seq < slotsAtPa; seq++) {
          for (let i = 0; i < WRITE_BLOCKS; i++) {
            const got = blockAt(s1, seq, i);
            const lba = lbaOf(seq) + i;
            if (!failed.has(seq)) {
              if (!(got.who === 'A' && got.seq === seq && got.lba === lba))
                bad.push(`S1 lba ${lba}: GOOD write ${seq} missing (${JSON.stringify(got)})`);
            } else if (got.who !== 'zero') {
              bad.push(
                `S1 lba ${lba}: write ${seq} did not complete GOOD but the block holds ${JSON.stringify(got)}`,
              );
            }
          }
        }
        // S2: what B overwrote is still B's (no A write landed later); slots A sent after
        // S1 was taken hold nothing of A.
        for (let seq = 0; seq < Math.max(sent, slotsAtPa); seq++) {
          for (let i = 0; i < WRITE_BLOCKS; i++) {
            const got = blockAt(s2, seq, i);
            const lba = lbaOf(seq) + i;
            if (seq < slotsAtPa) {
              if (!(got.who === 'B' && got.lba === lba))
                bad.push(
                  `S2 lba ${lba}: a late A write landed after PREEMPT AND ABORT (${JSON.stringify(got)})`,
                );
            } else if (got.who !== 'zero') {
              bad.push(`S2 lba ${lba}: write ${seq} (sent after S1) landed: ${JSON.stringify(got)}`);
            }
          }
        }
        expect(bad.slice(0, 20), `${bad.length} bad blocks`).toEqual([]);

        // A's later commands: the pending UA (unless a pipelined command took it), then
        // RESERVATION CONFLICT: A is no longer registered, B holds WE. If some of A's
        // commands ended without status, its session is abandoned and A logs in again as
        // the same I_T nexus (the login's TEST UNIT READY then takes any UA).
        const drained = pipe.outstanding === 0;
        let aLater = a;
        if (!drained) {
          a.ini.close();
          aLater = await login(t.port, t.iqn, `stream-a${run}`, [lun]);
        }
        try {
          const next = await writeBlocks(
            aLater,
            lun,
            lbaOf(0),
            pattern('A', 999_999, lbaOf(0), 1),
            FILE_BLOCK,
          );
          if (ua === 0 && drained) {
            checkCondition(next, UA_REGISTRATIONS_PREEMPTED, 'A first command after PREEMPT AND ABORT');
            conflict(
              await writeBlocks(aLater, lun, lbaOf(0), pattern('A', 999_999, lbaOf(0), 1), FILE_BLOCK),
              'A write after the UA',
            );
          } else {
            conflict(next, 'A write after PREEMPT AND ABORT');
          }
          conflict(
            await prout(aLater, lun, SA.RESERVE, TYPE.WE, { key: KA }),
            'A RESERVE with its preempted key',
          );
          expect(await readReservation(aLater, lun)).toMatchObject({ key: KB, type: TYPE.WE });
        } finally {
          if (aLater !== a) aLater.ini.close();
        }
        expect((await readKeys(b, lun)).keys).toEqual([KB]);
        expect(classify((await readBlocks(b, lun, lbaOf(0), 1, FILE_BLOCK)).data)).toMatchObject({
          who: 'B',
        });

        // The race was real: A had WRITEs outstanding when B sent PREEMPT AND ABORT.
        expect(inFlightAtPreempt, 'A writes in flight when PREEMPT AND ABORT was sent').toBeGreaterThan(0);
        console.log(
          `run ${run}: ${inFlightAtPreempt} A writes in flight at PREEMPT AND ABORT, ${goodBeforePa} GOOD before its status, ` +
            `${sent} sent, ${sent - failed.size} GOOD in all, ${failed.size} refused/aborted (${ua} UA)`,
        );
        good(await prout(b, lun, SA.CLEAR, 0, { key: KB }), 'B CLEAR');
      } finally {
        a.ini.close();
        b.ini.close();
      }
    },
  );
});

// ---------------------------------------------------------------------------------------------
// 4. Multipath

const ISID_1 = Buffer.from([0x40, 0x00, 0x01, 0x37, 0x00, 0x00]);
const ISID_2 = Buffer.from([0x40, 0x00, 0x01, 0x37, 0x00, 0x01]);

describe('multipath: one host through both portals', () => {
  it('Linux-like (one initiator port, REGISTER with ALL_TG_PT = 1 on one path): both I_T nexuses are registered and fenced together', async () => {
    const lun = LUN_MPATH_LINUX;
    const KH = 0x1111n;
    const KO = 0x2222n;
    // The same InitiatorName and ISID through both portals: one initiator port, two I_T nexuses.
    const p1 = await login(t.port, t.iqn, 'linux-host', [lun], ISID_1);
    const p2 = await login(port2, t.iqn, 'linux-host', [lun], ISID_1);
    const other = await login(t.port, t.iqn, 'linux-other', [lun]);
    const outsider = await login(port2, t.iqn, 'linux-outsider', [lun]);
    const blk = Buffer.alloc(RAM_BLOCK, 0x22);
    try {
      const g0 = (await readKeys(p1, lun)).generation;
      good(
        await prout(p1, lun, SA.REGISTER_AND_IGNORE_EXISTING_KEY, 0, { saKey: KH, allTgPt: true }),
        'register ALL_TG_PT via path 1',
      );
      good(
        await prout(other, lun, SA.REGISTER_AND_IGNORE_EXISTING_KEY, 0, { saKey: KO }),
        'other node registers',
      );
      // Path 2 is registered too (SPC-4 6.16.3.1, ALL_TG_PT): REGISTER from it must name KH.
      conflict(
        await prout(p2, lun, SA.REGISTER, 0, { key: 0n, saKey: KH }),
        'REGISTER via path 2 with key 0 (already registered)',
      );
      const fs = await readFullStatus(p2, lun);
      const mine = fs.filter((d) => d.transportId === `${INI('linux-host')},i,0x${ISID_1.toString('hex')}`);
      expect(mine.length, 'full status of the host').toBeGreaterThan(0);
      for (const d of mine) expect(d.key).toBe(KH);
      // One descriptor with ALL_TG_PT = 1, or one per target port (both allowed, SPC-4 6.15.5).
      expect(mine.length === 1 ? mine[0]!.allTgPt : mine.length === 2).toBe(true);

      good(await prout(p1, lun, SA.RESERVE, TYPE.WERO, { key: KH }), 'RESERVE WERO via path 1');
      expect(await readReservation(p2, lun)).toEqual({
        generation: g0 + 2,
        key: KH,
        scope: 0,
        type: TYPE.WERO,
      });
      good(await writeBlocks(p1, lun, 0, blk, RAM_BLOCK), 'write via path 1');
      good(await writeBlocks(p2, lun, 1, blk, RAM_BLOCK), 'write via path 2 (registered through ALL_TG_PT)');
      good(await writeBlocks(other, lun, 2, blk, RAM_BLOCK), 'write from the other registered node');
      conflict(await writeBlocks(outsider, lun, 3, blk, RAM_BLOCK), 'write from an unregistered host');
      good(await readBlocks(outsider, lun, 0, 4, RAM_BLOCK), 'read from an unregistered host');

      // The other node fences this host: PREEMPT of KH removes every I_T nexus registered
      // with it (SPC-4 5.14.11.4.3), on both target ports; each gets REGISTRATIONS PREEMPTED.
      good(await prout(other, lun, SA.PREEMPT, TYPE.WERO, { key: KO, saKey: KH }), 'other PREEMPT KH');
      expect(await readKeys(outsider, lun)).toEqual({ generation: g0 + 3, keys: [KO] });
      expect(await readReservation(outsider, lun)).toEqual({
        generation: g0 + 3,
        key: KO,
        scope: 0,
        type: TYPE.WERO,
      });
      for (const [p, name] of [
        [p1, 'path 1'],
        [p2, 'path 2'],
      ] as const) {
        checkCondition(
          await p.ini.scsi(TEST_UNIT_READY, { edtl: 0, lun }),
          UA_REGISTRATIONS_PREEMPTED,
          `${name} after PREEMPT`,
        );
        conflict(await writeBlocks(p, lun, 4, blk, RAM_BLOCK), `write via ${name} after PREEMPT`);
        good(await readBlocks(p, lun, 0, 4, RAM_BLOCK), `read via ${name} after PREEMPT`);
      }
      good(await writeBlocks(other, lun, 5, blk, RAM_BLOCK), 'new holder writes');

      // The host re-registers once (ALL_TG_PT again) and both paths may write again.
      good(
        await prout(p2, lun, SA.REGISTER_AND_IGNORE_EXISTING_KEY, 0, { saKey: KH, allTgPt: true }),
        're-register via path 2',
      );
      good(await writeBlocks(p1, lun, 6, blk, RAM_BLOCK), 'write via path 1 after re-register');
      good(await writeBlocks(p2, lun, 7, blk, RAM_BLOCK), 'write via path 2 after re-register');
      good(await prout(other, lun, SA.CLEAR, 0, { key: KO }), 'CLEAR');
    } finally {
      for (const n of [p1, p2, other, outsider]) n.ini.close();
    }
  });

  // SPC-4 6.16.3.1 (basic PR OUT parameter list): with ALL_TG_PT = 1 the device server
  // "shall create the specified registration on all target ports in the SCSI target device
  // known to the device server (i.e., as if the same registration request had been
  // received individually through each target port)": one registered I_T nexus per target
  // port, here two. READ KEYS (SPC-4 6.15.2) lists "each currently registered I_T nexus'
  // reservation key. If multiple I_T nexuses have registered with the same key, then that
  // key value shall be listed multiple times, once for each such registration."
  it('READ KEYS lists an ALL_TG_PT = 1 registration once per target port', async () => {
    const lun = LUN_ALL_TG_PT;
    const KH = 0x3333n;
    const p1 = await login(t.port, t.iqn, 'alltgpt-keys', [lun], ISID_1);
    try {
      const g0 = (await readKeys(p1, lun)).generation;
      good(
        await prout(p1, lun, SA.REGISTER_AND_IGNORE_EXISTING_KEY, 0, { saKey: KH, allTgPt: true }),
        'register ALL_TG_PT',
      );
      const keys = await readKeys(p1, lun);
      good(await prout(p1, lun, SA.REGISTER, 0, { key: KH, saKey: 0n, allTgPt: false }), 'unregister');
      // Two target ports (two portals): two registered I_T nexuses; one PR OUT, so +1.
      expect(keys).toEqual({ generation: g0 + 1, keys: [KH, KH] });
    } finally {
      p1.ini.close();
    }
  });

  // SPC-4 5.14.10: for every type but the all registrants ones "the persistent
  // reservation holder is the I_T nexus for which the reservation was established" by
  // RESERVE/PREEMPT/...; an ALL_TG_PT registration makes the other I_T nexuses of the
  // initiator port registrants, not holders. Under Write Exclusive a registrant that is
  // not the holder may not write (SPC-4 5.14.1 table 62) and its RESERVE conflicts
  // (SPC-4 5.14.9), its RELEASE is GOOD without effect (5.14.11.2).
  it(
    'with ALL_TG_PT = 1, only the I_T nexus that reserved holds a Write Exclusive reservation',
    async () => {
      const lun = LUN_ALL_TG_PT;
      const KH = 0x4444n;
      const p1 = await login(t.port, t.iqn, 'alltgpt-holder', [lun], ISID_1);
      const p2 = await login(port2, t.iqn, 'alltgpt-holder', [lun], ISID_1);
      const blk = Buffer.alloc(RAM_BLOCK, 0x55);
      try {
        good(
          await prout(p1, lun, SA.REGISTER_AND_IGNORE_EXISTING_KEY, 0, { saKey: KH, allTgPt: true }),
          'register ALL_TG_PT',
        );
        good(await prout(p1, lun, SA.RESERVE, TYPE.WE, { key: KH }), 'RESERVE WE via path 1');
        good(await writeBlocks(p1, lun, 0, blk, RAM_BLOCK), 'write via path 1 (holder)');
        const w2 = await writeBlocks(p2, lun, 1, blk, RAM_BLOCK);
        const r2 = await prout(p2, lun, SA.RESERVE, TYPE.WE, { key: KH });
        good(
          await prout(p2, lun, SA.RELEASE, TYPE.WE, { key: KH }),
          'RELEASE via path 2 (not holder: no effect)',
        );
        const still = await readReservation(p1, lun);
        good(await prout(p1, lun, SA.CLEAR, 0, { key: KH }), 'CLEAR');
        conflict(w2, 'write via path 2 (registrant, not holder) under WE');
        conflict(r2, 'RESERVE via path 2 (not holder)');
        expect(still, 'RELEASE from a non-holder changes nothing').toMatchObject({ key: KH, type: TYPE.WE });
      } finally {
        p1.ini.close();
        p2.ini.close();
      }
    },
  );

  it('Windows-like (one session per path, each its own ISID; ALL_TG_PT = 1 covers only the registering initiator port)', async () => {
    const lun = LUN_MPATH_WINDOWS;
    const KW = keyOfNode(7);
    const KO = keyOfNode(8);
    const p1 = await login(t.port, t.iqn, 'win-host', [lun], ISID_1);
    const p2 = await login(port2, t.iqn, 'win-host', [lun], ISID_2);
    const other = await login(port2, t.iqn, 'win-other', [lun]);
    const blk = Buffer.alloc(RAM_BLOCK, 0x33);
    try {
      const g0 = (await readKeys(p1, lun)).generation;
      good(
        await prout(p1, lun, SA.REGISTER_AND_IGNORE_EXISTING_KEY, 0, { saKey: KW, allTgPt: true }),
        'register via path 1',
      );
      good(await prout(p1, lun, SA.RESERVE, TYPE.WERO, { key: KW }), 'RESERVE WERO via path 1');
      // Path 2 is another initiator port (other ISID): ALL_TG_PT does not register it
      // (SPC-4 6.16.3.1: "the same initiator port"), so under WERO it may not write.
      conflict(await writeBlocks(p2, lun, 0, blk, RAM_BLOCK), 'write via unregistered path 2');
      good(await readBlocks(p2, lun, 0, 1, RAM_BLOCK), 'read via unregistered path 2');
      conflict(await prout(p2, lun, SA.RESERVE, TYPE.WERO, { key: KW }), 'RESERVE via unregistered path 2');
      // MSDSM registers the key on every path.
      good(
        await prout(p2, lun, SA.REGISTER_AND_IGNORE_EXISTING_KEY, 0, { saKey: KW, allTgPt: true }),
        'register via path 2',
      );
      // Each ALL_TG_PT = 1 REGISTER registers its initiator port through both target ports
      // (SPC-4 6.16.3.1): four registered I_T nexuses, each listed (SPC-4 6.15.2).
      expect(await readKeys(other, lun)).toEqual({ generation: g0 + 2, keys: [KW, KW, KW, KW] });
      good(await writeBlocks(p1, lun, 1, blk, RAM_BLOCK), 'write via path 1 (holder)');
      good(await writeBlocks(p2, lun, 2, blk, RAM_BLOCK), 'write via path 2 (registrant)');
      conflict(await writeBlocks(other, lun, 3, blk, RAM_BLOCK), 'write from the unregistered other node');

      // Path 1 fails (connection drops, no logout). The reservation survives the I_T nexus
      // loss (SPC-4 5.14.1), path 2 goes on writing.
      p1.ini.close();
      await sleep(200);
      expect(await readReservation(p2, lun)).toEqual({
        generation: g0 + 2,
        key: KW,
        scope: 0,
        type: TYPE.WERO,
      });
      good(await writeBlocks(p2, lun, 4, blk, RAM_BLOCK), 'write via path 2 after path 1 failed');

      // The other node joins and preempts KW: both registrations of the host go.
      good(await prout(other, lun, SA.REGISTER_AND_IGNORE_EXISTING_KEY, 0, { saKey: KO }), 'other registers');
      good(await prout(other, lun, SA.PREEMPT, TYPE.WERO, { key: KO, saKey: KW }), 'other PREEMPT KW');
      expect(await readKeys(other, lun)).toEqual({ generation: g0 + 4, keys: [KO] });
      checkCondition(
        await p2.ini.scsi(TEST_UNIT_READY, { edtl: 0, lun }),
        UA_REGISTRATIONS_PREEMPTED,
        'path 2 after PREEMPT',
      );
      conflict(await writeBlocks(p2, lun, 5, blk, RAM_BLOCK), 'write via path 2 after PREEMPT');
      good(await prout(other, lun, SA.CLEAR, 0, { key: KO }), 'CLEAR');
    } finally {
      for (const n of [p1, p2, other]) n.ini.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 3. Restart with and without APTPL (last: it restarts the target)

describe('restart (SIGTERM, same config and stateDir)', () => {
  const KA = 0xaaaa0001n;
  const KB = 0xbbbb0002n;
  const LUNS = [LUN_APTPL, LUN_NO_APTPL, LUN_APTPL_LAST];
  let generationBefore = -1;
  let generationAfter = -1;

  async function restart(): Promise<void> {
    expect(await t.stop('SIGTERM'), 'exit code after SIGTERM').toBe(0);
    // The very same config file: startTarget wrote it to <dir>/spindle.yaml, and it names
    // stateDir <dir>/state.
    t = await startWithConfig(path.join(t.dir, 'spindle.yaml'), { port: t.port, iqn: t.iqn, dir: t.dir });
  }

  it('APTPL = 1 keeps keys, holder and type; APTPL = 0 (also when set last) loses everything', async () => {
    const a = await login(t.port, t.iqn, 'aptpl-a', LUNS);
    const b = await login(port2, t.iqn, 'aptpl-b', LUNS);
    const blk = Buffer.alloc(RAM_BLOCK, 0x44);
    try {
      // LU with APTPL = 1 on every registration.
      good(
        await prout(a, LUN_APTPL, SA.REGISTER, 0, { key: 0n, saKey: KA, aptpl: true }),
        'A register APTPL',
      );
      good(
        await prout(b, LUN_APTPL, SA.REGISTER, 0, { key: 0n, saKey: KB, aptpl: true }),
        'B register APTPL',
      );
      good(await prout(a, LUN_APTPL, SA.RESERVE, TYPE.EARO, { key: KA }), 'A RESERVE EARO');
      // REPORT CAPABILITIES (SPC-4 6.15.4): byte 2 bit 0 PTPL_C, byte 3 bit 0 PTPL_A (APTPL active).
      const caps = await a.ini.scsi(prinCdb(IN.REPORT_CAPABILITIES, 8), {
        lun: LUN_APTPL,
        read: true,
        edtl: 8,
      });
      good(caps, 'REPORT CAPABILITIES');
      expect(caps.data[2]! & 0x01, 'PTPL_C').toBe(1);
      expect(caps.data[3]! & 0x01, 'PTPL_A').toBe(1);
      const keys = await readKeys(a, LUN_APTPL);
      expect(keys.keys).toEqual([KA, KB]);
      generationBefore = keys.generation;
      expect(generationBefore).toBeGreaterThan(0);
      expect(await readReservation(a, LUN_APTPL)).toMatchObject({ key: KA, type: TYPE.EARO, scope: 0 });

      // LU with APTPL = 0.
      good(await prout(a, LUN_NO_APTPL, SA.REGISTER, 0, { key: 0n, saKey: KA }), 'A register');
      good(await prout(b, LUN_NO_APTPL, SA.REGISTER, 0, { key: 0n, saKey: KB }), 'B register');
      good(await prout(a, LUN_NO_APTPL, SA.RESERVE, TYPE.WE, { key: KA }), 'A RESERVE WE');
      conflict(await writeBlocks(b, LUN_NO_APTPL, 0, blk, RAM_BLOCK), 'B write under WE');

      // LU where APTPL was 1, then 0: "the APTPL value from the most recent successfully
      // completed REGISTER ... shall determine the logical unit's behavior in the event of
      // a power loss" (SPC-4 5.14.5).
      good(
        await prout(a, LUN_APTPL_LAST, SA.REGISTER, 0, { key: 0n, saKey: KA, aptpl: true }),
        'A register APTPL=1',
      );
      good(await prout(a, LUN_APTPL_LAST, SA.RESERVE, TYPE.WE, { key: KA }), 'A RESERVE WE');
      good(
        await prout(b, LUN_APTPL_LAST, SA.REGISTER, 0, { key: 0n, saKey: KB, aptpl: false }),
        'B register APTPL=0',
      );
      const caps2 = await a.ini.scsi(prinCdb(IN.REPORT_CAPABILITIES, 8), {
        lun: LUN_APTPL_LAST,
        read: true,
        edtl: 8,
      });
      expect(caps2.data[3]! & 0x01, 'PTPL_A after APTPL=0').toBe(0);
    } finally {
      a.ini.close();
      b.ini.close();
    }

    await restart();

    // Same InitiatorNames, ISIDs and portals: the same I_T nexuses as before.
    const a2 = await login(t.port, t.iqn, 'aptpl-a', LUNS);
    const b2 = await login(port2, t.iqn, 'aptpl-b', LUNS);
    const c2 = await login(t.port, t.iqn, 'aptpl-c', LUNS);
    try {
      // SPC-4 5.14.5: with APTPL = 1 registrations and the reservation survive power loss.
      const keys = await readKeys(b2, LUN_APTPL);
      generationAfter = keys.generation;
      expect(keys.keys).toEqual([KA, KB]);
      const res = await readReservation(b2, LUN_APTPL);
      expect({ key: res.key, type: res.type, scope: res.scope }).toEqual({
        key: KA,
        type: TYPE.EARO,
        scope: 0,
      });
      const caps = await a2.ini.scsi(prinCdb(IN.REPORT_CAPABILITIES, 8), {
        lun: LUN_APTPL,
        read: true,
        edtl: 8,
      });
      expect(caps.data[3]! & 0x01, 'PTPL_A after restart').toBe(1);
      // The holder is still A's I_T nexus; B (registered) has access under EARO, C has none.
      good(await writeBlocks(a2, LUN_APTPL, 0, blk, RAM_BLOCK), 'A (holder) write after restart');
      good(await writeBlocks(b2, LUN_APTPL, 1, blk, RAM_BLOCK), 'B (registrant) write after restart');
      conflict(
        await readBlocks(c2, LUN_APTPL, 0, 1, RAM_BLOCK),
        'C (unregistered) read under EARO after restart',
      );
      conflict(
        await writeBlocks(c2, LUN_APTPL, 2, blk, RAM_BLOCK),
        'C (unregistered) write under EARO after restart',
      );
      // The registrations are live: B's REGISTER must name its key; B is not the holder.
      conflict(
        await prout(b2, LUN_APTPL, SA.REGISTER, 0, { key: 0n, saKey: KB }),
        'B REGISTER with key 0 (still registered)',
      );
      conflict(await prout(b2, LUN_APTPL, SA.RESERVE, TYPE.EARO, { key: KB }), 'B RESERVE (A holds)');
      good(
        await prout(a2, LUN_APTPL, SA.RESERVE, TYPE.EARO, { key: KA }),
        'A RESERVE again (holder, same type)',
      );

      // SPC-4 5.14.5: with APTPL = 0 a power off loses registrations and reservation.
      for (const lun of [LUN_NO_APTPL, LUN_APTPL_LAST]) {
        expect((await readKeys(b2, lun)).keys, `LUN ${lun} keys`).toEqual([]);
        expect((await readReservation(b2, lun)).key, `LUN ${lun} reservation`).toBeNull();
        good(
          await writeBlocks(b2, lun, 0, blk, RAM_BLOCK),
          `LUN ${lun}: B write without reservation after restart`,
        );
        conflict(
          await prout(a2, lun, SA.RESERVE, TYPE.WE, { key: KA }),
          `LUN ${lun}: A RESERVE with its lost key`,
        );
      }

      // CLEAR must be as durable as what it clears: nothing comes back after another restart.
      good(await prout(a2, LUN_APTPL, SA.CLEAR, 0, { key: KA }), 'A CLEAR after restart');
    } finally {
      a2.ini.close();
      b2.ini.close();
      c2.ini.close();
    }

    await restart();
    const a3 = await login(t.port, t.iqn, 'aptpl-a', [LUN_APTPL]);
    try {
      expect((await readKeys(a3, LUN_APTPL)).keys, 'keys after CLEAR and restart').toEqual([]);
      expect((await readReservation(a3, LUN_APTPL)).key, 'reservation after CLEAR and restart').toBeNull();
    } finally {
      a3.ini.close();
    }
  });

  // SPC-4 6.15.2 (READ KEYS): "Regardless of the APTPL bit value the PRgeneration value
  // shall be set to zero by a power on." A restart is a power on, so READ KEYS after it
  // reports PRGENERATION 0 even though the APTPL registrations survive.
  it('PRgeneration is zero after the restart (power on), APTPL or not', () => {
    expect(generationBefore, 'the first test ran').toBeGreaterThan(0);
    expect(generationAfter).toBe(0);
  });
});
