/**
 * DataPDUInOrder=No and DataSequenceInOrder=No (RFC 7143 13.18, 13.19, 11.7.6): the
 * target accepts what the initiator offers, takes Data-Out PDUs within a sequence and
 * whole sequences in any order, and runs the command only when every byte has arrived.
 * Overlays, gaps, PDUs outside their sequence and inconsistent DataSNs are protocol
 * errors (Reject, connection dropped: ErrorRecoveryLevel 0). Reads still go out in order.
 *
 * The target accepts 8 KiB per PDU, bursts of 64 KiB and up to 4 R2Ts per task, so one
 * burst is 8 PDUs and a 256 KiB write has 4 sequences outstanding at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { cleanup, ramDiskYaml, startTarget, type StartedTarget } from '../helpers/target.ts';
import {
  Initiator,
  Opcode,
  RESERVED_TAG,
  Status,
  TEST_UNIT_READY,
  dataOutBhs,
  nopOutBhs,
  read10,
  rejectReason,
  scsiCommandBhs,
  write10,
  type Pdu,
} from '../helpers/initiator.ts';
import { u32 } from '../../src/shared/iscsi/pdu.ts';

const PDU = 8192;
const BURST = 65536;
let t: StartedTarget;

beforeAll(async () => {
  t = await startTarget({
    yaml: ramDiskYaml(`
workers: { session: 1, lun: 1 }
iscsi: { maxRecvDataSegmentLength: 8KiB, maxBurstLength: 64KiB, firstBurstLength: 64KiB, maxOutstandingR2T: 4 }
`),
  });
});

afterAll(async () => {
  await t?.stop();
  cleanup(t);
});

let isidCounter = 1;

interface Order {
  pdu: 'Yes' | 'No';
  seq: 'Yes' | 'No';
  initialR2T?: 'Yes' | 'No';
  immediateData?: 'Yes' | 'No';
}

async function open(o: Order): Promise<Initiator> {
  const ini = await Initiator.connect(t.port);
  const n = isidCounter++;
  const r = await ini.login({
    initiatorName: 'iqn.2026-11.io.spindle:data-order',
    targetName: t.iqn,
    isid: Buffer.from([0x80, 0x44, 0, 0, (n >> 8) & 0xff, n & 0xff]),
    keys: [
      ['DataPDUInOrder', o.pdu],
      ['DataSequenceInOrder', o.seq],
      ['InitialR2T', o.initialR2T ?? 'Yes'],
      ['ImmediateData', o.immediateData ?? 'No'],
      ['MaxOutstandingR2T', '8'],
      ['MaxBurstLength', String(BURST)],
      ['FirstBurstLength', String(BURST)],
      ['MaxRecvDataSegmentLength', String(PDU)],
    ],
  });
  if (!r.ok) throw new Error(`login failed ${r.statusClass}/${r.statusDetail}`);
  // RFC 7143 13.18/13.19: OR with the target's No, so the initiator's offer is the result.
  expect(r.targetKeys['DataPDUInOrder']).toBe(o.pdu);
  expect(r.targetKeys['DataSequenceInOrder']).toBe(o.seq);
  const tur = await ini.scsi(TEST_UNIT_READY, { edtl: 0 }); // absorbs the first-contact unit attention
  expect(tur.status).toBe(Status.GOOD);
  return ini;
}

/** Seeded shuffle (deterministic per test run seed, so a failure can be replayed). */
function shuffle<T>(a: T[], seed: number): T[] {
  const out = [...a];
  let x = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = (x >>> 0) % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

interface Piece {
  offset: number;
  length: number;
  /** DataSN within its sequence (its index in offset order). */
  dataSN: number;
  ttt: number;
}

/** The PDUs of one sequence [offset, offset+length), PDU bytes each, in offset order. */
function pieces(offset: number, length: number, ttt: number, size = PDU): Piece[] {
  const out: Piece[] = [];
  for (let at = offset, sn = 0; at < offset + length; at += size, sn++) {
    out.push({ offset: at, length: Math.min(size, offset + length - at), dataSN: sn, ttt });
  }
  return out;
}

/** Send the pieces in the given order; F on the last one sent of each sequence (by TTT and range). */
function sendPieces(
  ini: Initiator,
  itt: number,
  data: Buffer,
  order: Piece[],
  seqOf: (p: Piece) => number,
): void {
  const lastOf = new Map<number, Piece>();
  for (const p of order) lastOf.set(seqOf(p), p);
  for (const p of order) {
    ini.send(
      dataOutBhs({
        final: lastOf.get(seqOf(p)) === p,
        itt,
        ttt: p.ttt,
        dataSN: p.dataSN,
        bufferOffset: p.offset,
        expStatSN: ini.expStatSN,
      }),
      data.subarray(p.offset, p.offset + p.length),
    );
  }
}

/** Send a WRITE(10) command PDU (with optional immediate data); returns its ITT. */
function sendWrite(ini: Initiator, lba: number, data: Buffer, immediate = 0, final = true): number {
  const itt = ini.allocItt();
  ini.send(
    scsiCommandBhs({
      write: true,
      final,
      itt,
      edtl: data.length,
      cmdSN: ini.takeCmdSN(),
      expStatSN: ini.expStatSN,
      cdb: write10(lba, data.length / 512),
    }),
    data.subarray(0, immediate),
  );
  return itt;
}

/** Read PDUs for `itt` until `n` R2Ts are in (or the connection stays quiet). */
async function r2ts(ini: Initiator, itt: number, n: number): Promise<Pdu[]> {
  const got: Pdu[] = [];
  while (got.length < n) {
    const p = await ini.nextPdu(2000);
    if (p.itt !== itt) continue;
    if (p.opcode !== Opcode.R2T) throw new Error(`expected an R2T, got opcode 0x${p.opcode.toString(16)}`);
    got.push(p);
  }
  return got;
}

async function response(ini: Initiator, itt: number): Promise<Pdu> {
  for (;;) {
    const p = await ini.nextPdu(3000);
    if (p.itt === itt && (p.opcode === Opcode.SCSI_RESPONSE || p.opcode === Opcode.REJECT)) return p;
  }
}

async function readBack(ini: Initiator, lba: number, length: number): Promise<Buffer> {
  const r = await ini.scsi(read10(lba, length / 512), { read: true, edtl: length });
  expect(r.status).toBe(Status.GOOD);
  return r.data;
}

/** The connection gets a Reject (protocol error, header echoed) and is closed. */
async function expectRejectAndClose(ini: Initiator, itt: number): Promise<void> {
  const got = await ini.expectClose(3000);
  const rej = got.find((p) => p.opcode === Opcode.REJECT);
  expect(rej, 'a Reject before the close').toBeDefined();
  expect(rejectReason(rej!)).toBe(0x04);
  expect(u32(rej!.data, 16)).toBe(itt); // the rejected Data-Out's header
  expect(got.some((p) => p.itt === itt && p.opcode === Opcode.SCSI_RESPONSE)).toBe(false);
}

/**
 * A write whose data is all in while it waits behind a CmdSN gap (so its task is still
 * "receiving"), then a stray Data-Out for it: discarded (RFC 7143 11.7: nothing more is
 * expected), and the write runs exactly once, with its own data, when the gap fills.
 *   'immediate': all data came as immediate data; the stray PDU is unsolicited.
 *   'afterF':    the data came through an R2T, F on its last PDU; the stray PDU is a
 *                zero-length F starting the next sequence (DataSN 0) at the end.
 *   'withoutF':  the data came through an R2T with no F at all (complete by bytes); the
 *                stray PDU is the zero-length F that would close that sequence.
 */
async function strayDataOutForHeldWrite(
  ini: Initiator,
  lba: number,
  how: 'immediate' | 'afterF' | 'withoutF',
): Promise<void> {
  const solicited = how !== 'immediate';
  const data = randomBytes(4096);
  const itt = ini.allocItt();
  const gap = ini.takeCmdSN(); // a CmdSN gap: the write waits, still receiving
  ini.send(
    scsiCommandBhs({
      write: true,
      itt,
      edtl: data.length,
      cmdSN: ini.takeCmdSN(),
      expStatSN: ini.expStatSN,
      cdb: write10(lba, 8),
    }),
    solicited ? Buffer.alloc(0) : data,
  );
  if (solicited) {
    const r2t = (await r2ts(ini, itt, 1))[0]!;
    const ps = pieces(0, data.length, r2t.ttt, 1024);
    if (how === 'afterF') {
      sendPieces(ini, itt, data, ps, seqKey);
      ini.send(dataOutBhs({ final: true, itt, ttt: r2t.ttt, dataSN: 0, bufferOffset: data.length }));
    } else {
      for (const p of ps) {
        ini.send(
          dataOutBhs({ final: false, itt, ttt: p.ttt, dataSN: p.dataSN, bufferOffset: p.offset }),
          data.subarray(p.offset, p.offset + p.length),
        );
      }
      ini.send(dataOutBhs({ final: true, itt, ttt: r2t.ttt, dataSN: ps.length, bufferOffset: 0 }));
    }
  } else {
    ini.send(
      dataOutBhs({ final: false, itt, ttt: RESERVED_TAG, dataSN: 0, bufferOffset: 1024 }),
      Buffer.alloc(512, 0xee),
    );
  }
  expect(await ini.maybePdu(300)).toBeNull(); // no Reject, and no status before the gap fills
  const ping = ini.allocItt();
  ini.send(nopOutBhs({ itt: ping, cmdSN: gap, expStatSN: ini.expStatSN }));
  const got: Pdu[] = [];
  for (;;) {
    const p = await ini.maybePdu(500);
    if (p === null) break;
    got.push(p);
  }
  expect(got.filter((p) => p.itt === ping && p.opcode === Opcode.NOP_IN)).toHaveLength(1);
  const responses = got.filter((p) => p.itt === itt);
  expect(responses.map((p) => p.opcode)).toEqual([Opcode.SCSI_RESPONSE]); // exactly once
  expect(responses[0]!.bhs[3]).toBe(Status.GOOD);
  expect((await readBack(ini, lba, data.length)).equals(data)).toBe(true);
  expect(t.proc.exitCode).toBeNull();
}

const seqKey = (p: Piece): number => (p.ttt === RESERVED_TAG ? -1 : Math.floor(p.offset / BURST));

describe('before any out-of-order write has used a task object (keep this first)', () => {
  it('a Data-Out for a write that expected none is discarded, not a crash', async () => {
    const ini = await open({ pdu: 'No', seq: 'No', initialR2T: 'No', immediateData: 'Yes' });
    try {
      await strayDataOutForHeldWrite(ini, 4200, 'immediate');
    } finally {
      ini.close();
    }
  });
});

describe('negotiation', () => {
  it("answers the initiator's own value for both keys (OR with the target's No)", async () => {
    for (const o of [
      { pdu: 'Yes', seq: 'Yes' },
      { pdu: 'No', seq: 'Yes' },
      { pdu: 'Yes', seq: 'No' },
      { pdu: 'No', seq: 'No' },
    ] as const) {
      const ini = await open(o); // open() checks the answers
      ini.close();
    }
  });
});

describe('DataPDUInOrder=Yes, DataSequenceInOrder=Yes (strict order)', () => {
  it('an unsolicited burst of several Data-Out PDUs is never solicited again: R2Ts start where it ends', async () => {
    const ini = await open({ pdu: 'Yes', seq: 'Yes', initialR2T: 'No' });
    try {
      const data = randomBytes(2 * BURST);
      // The test initiator sends the 64 KiB unsolicited burst as 8 PDUs of 8 KiB.
      const w = await ini.scsi(write10(50, data.length / 512), { write: true, edtl: data.length, data });
      expect(w.status).toBe(Status.GOOD);
      expect(w.r2ts.map((p) => [u32(p.bhs, 40), u32(p.bhs, 44)])).toEqual([[BURST, BURST]]);
      expect((await readBack(ini, 50, data.length)).equals(data)).toBe(true);
    } finally {
      ini.close();
    }
  });

  it('a zero-length Data-Out after all data of a write held behind a CmdSN gap does not run it twice', async () => {
    const ini = await open({ pdu: 'Yes', seq: 'Yes' });
    try {
      await strayDataOutForHeldWrite(ini, 70, 'afterF');
    } finally {
      ini.close();
    }
  });

  it('the same with DataPDUInOrder=No, DataSequenceInOrder=No', async () => {
    const ini = await open({ pdu: 'No', seq: 'No' });
    try {
      await strayDataOutForHeldWrite(ini, 80, 'withoutF');
    } finally {
      ini.close();
    }
  });

  it('a PDU out of order is rejected (protocol error, header echoed) and the connection dropped', async () => {
    const ini = await open({ pdu: 'Yes', seq: 'Yes' });
    const data = randomBytes(BURST);
    const itt = sendWrite(ini, 60, data);
    const r2t = (await r2ts(ini, itt, 1))[0]!;
    ini.send(
      dataOutBhs({ final: false, itt, ttt: r2t.ttt, dataSN: 0, bufferOffset: PDU }),
      data.subarray(PDU, 2 * PDU),
    );
    await expectRejectAndClose(ini, itt);
  });
});

describe('DataPDUInOrder=No, DataSequenceInOrder=Yes', () => {
  it('takes the PDUs of each R2T burst in any order and writes the right bytes', async () => {
    const ini = await open({ pdu: 'No', seq: 'Yes' });
    try {
      const data = randomBytes(4 * BURST);
      const itt = sendWrite(ini, 100, data);
      // MaxOutstandingR2T=4: all four bursts are solicited at once, answered one after
      // the other (sequences in order), each burst's PDUs shuffled.
      const got = await r2ts(ini, itt, 4);
      expect(got.map((p) => u32(p.bhs, 40))).toEqual([0, BURST, 2 * BURST, 3 * BURST]);
      got.forEach((r2t, i) =>
        sendPieces(
          ini,
          itt,
          data,
          shuffle(pieces(u32(r2t.bhs, 40), u32(r2t.bhs, 44), r2t.ttt), 7 + i),
          seqKey,
        ),
      );
      const rsp = await response(ini, itt);
      expect(rsp.opcode).toBe(Opcode.SCSI_RESPONSE);
      expect(rsp.bhs[3]).toBe(Status.GOOD);
      expect((await readBack(ini, 100, data.length)).equals(data)).toBe(true);
    } finally {
      ini.close();
    }
  });

  it('takes an unsolicited burst (immediate data + Data-Out) in any order, then solicits the rest', async () => {
    const ini = await open({ pdu: 'No', seq: 'Yes', initialR2T: 'No', immediateData: 'Yes' });
    try {
      const data = randomBytes(2 * BURST);
      const itt = sendWrite(ini, 400, data, PDU, false); // 8 KiB immediate, more unsolicited follows
      const unsolicited = pieces(PDU, BURST - PDU, RESERVED_TAG);
      sendPieces(ini, itt, data, shuffle(unsolicited, 99), seqKey);
      const r2t = (await r2ts(ini, itt, 1))[0]!;
      expect([u32(r2t.bhs, 40), u32(r2t.bhs, 44)]).toEqual([BURST, BURST]);
      sendPieces(ini, itt, data, shuffle(pieces(BURST, BURST, r2t.ttt), 5), seqKey);
      const rsp = await response(ini, itt);
      expect(rsp.bhs[3]).toBe(Status.GOOD);
      expect((await readBack(ini, 400, data.length)).equals(data)).toBe(true);
    } finally {
      ini.close();
    }
  });

  it('PDUs of different sizes (not multiples of 8 KiB) in any order', async () => {
    const ini = await open({ pdu: 'No', seq: 'Yes' });
    try {
      const data = randomBytes(BURST);
      const itt = sendWrite(ini, 600, data);
      const r2t = (await r2ts(ini, itt, 1))[0]!;
      const sizes = [100, 4096, 8192, 1, 3000, 8192, 7000, 512];
      const ps: Piece[] = [];
      let at = 0;
      for (let i = 0; at < BURST; i++) {
        const len = Math.min(sizes[i % sizes.length]!, BURST - at);
        ps.push({ offset: at, length: len, dataSN: ps.length, ttt: r2t.ttt });
        at += len;
      }
      sendPieces(ini, itt, data, shuffle(ps, 1234), seqKey);
      const rsp = await response(ini, itt);
      expect(rsp.bhs[3]).toBe(Status.GOOD);
      expect((await readBack(ini, 600, data.length)).equals(data)).toBe(true);
    } finally {
      ini.close();
    }
  });

  it('a PDU of the next sequence before the current one is complete is a protocol error', async () => {
    const ini = await open({ pdu: 'No', seq: 'Yes' });
    const data = randomBytes(2 * BURST);
    const itt = sendWrite(ini, 700, data);
    const got = await r2ts(ini, itt, 2);
    ini.send(
      dataOutBhs({ final: false, itt, ttt: got[0]!.ttt, dataSN: 0, bufferOffset: 0 }),
      data.subarray(0, PDU),
    );
    ini.send(
      dataOutBhs({ final: false, itt, ttt: got[1]!.ttt, dataSN: 0, bufferOffset: BURST }),
      data.subarray(BURST, BURST + PDU),
    );
    await expectRejectAndClose(ini, itt);
  });
});

describe('DataPDUInOrder=Yes, DataSequenceInOrder=No', () => {
  it('takes the outstanding R2T bursts in reverse order, each burst in order', async () => {
    const ini = await open({ pdu: 'Yes', seq: 'No' });
    try {
      const data = randomBytes(8 * BURST);
      const itt = sendWrite(ini, 1000, data);
      for (let window = 0; window < 2; window++) {
        const got = await r2ts(ini, itt, 4);
        for (const r2t of [...got].reverse()) {
          sendPieces(ini, itt, data, pieces(u32(r2t.bhs, 40), u32(r2t.bhs, 44), r2t.ttt), seqKey);
        }
      }
      const rsp = await response(ini, itt);
      expect(rsp.bhs[3]).toBe(Status.GOOD);
      expect((await readBack(ini, 1000, data.length)).equals(data)).toBe(true);
    } finally {
      ini.close();
    }
  });

  it('a PDU out of order within its sequence is a protocol error', async () => {
    const ini = await open({ pdu: 'Yes', seq: 'No' });
    const data = randomBytes(BURST);
    const itt = sendWrite(ini, 1100, data);
    const r2t = (await r2ts(ini, itt, 1))[0]!;
    ini.send(
      dataOutBhs({ final: false, itt, ttt: r2t.ttt, dataSN: 0, bufferOffset: PDU }),
      data.subarray(PDU, 2 * PDU),
    );
    await expectRejectAndClose(ini, itt);
  });

  it('a wrong DataSN within a sequence drops the connection (RFC 7143 11.7.5)', async () => {
    const ini = await open({ pdu: 'Yes', seq: 'No' });
    const data = randomBytes(BURST);
    const itt = sendWrite(ini, 1200, data);
    const r2t = (await r2ts(ini, itt, 1))[0]!;
    ini.send(
      dataOutBhs({ final: false, itt, ttt: r2t.ttt, dataSN: 0, bufferOffset: 0 }),
      data.subarray(0, PDU),
    );
    ini.send(
      dataOutBhs({ final: false, itt, ttt: r2t.ttt, dataSN: 5, bufferOffset: PDU }),
      data.subarray(PDU, 2 * PDU),
    );
    const got = await ini.expectClose(3000);
    expect(got.some((p) => p.itt === itt && p.opcode === Opcode.SCSI_RESPONSE)).toBe(false);
  });
});

describe('DataPDUInOrder=No, DataSequenceInOrder=No', () => {
  it('1 MiB: unsolicited burst and every outstanding sequence interleaved in one random order', async () => {
    const ini = await open({ pdu: 'No', seq: 'No', initialR2T: 'No', immediateData: 'Yes' });
    try {
      const data = randomBytes(16 * BURST);
      const itt = sendWrite(ini, 2000, data, PDU, false);
      sendPieces(ini, itt, data, shuffle(pieces(PDU, BURST - PDU, RESERVED_TAG), 3), seqKey);
      let seed = 11;
      let solicited = BURST;
      while (solicited < data.length) {
        // Whatever is outstanding now (up to 4 R2Ts), all PDUs mixed together.
        const got: Pdu[] = [];
        for (;;) {
          const p = got.length === 0 ? await ini.nextPdu(2000) : await ini.maybePdu(100);
          if (p === null) break;
          if (p.itt === itt && p.opcode === Opcode.R2T) got.push(p);
        }
        expect(got.length).toBeGreaterThan(0);
        expect(got.length).toBeLessThanOrEqual(4);
        const all = got.flatMap((r) => pieces(u32(r.bhs, 40), u32(r.bhs, 44), r.ttt));
        sendPieces(ini, itt, data, shuffle(all, seed++), seqKey);
        solicited += got.reduce((n, r) => n + u32(r.bhs, 44), 0);
      }
      const rsp = await response(ini, itt);
      expect(rsp.opcode).toBe(Opcode.SCSI_RESPONSE);
      expect(rsp.bhs[3]).toBe(Status.GOOD);
      expect((await readBack(ini, 2000, data.length)).equals(data)).toBe(true);
    } finally {
      ini.close();
    }
  });

  it('Data-In still goes out in order: offsets increasing, DataSN 0, 1, ...', async () => {
    const ini = await open({ pdu: 'No', seq: 'No' });
    try {
      const data = randomBytes(4 * BURST);
      expect(
        (await ini.scsi(write10(3000, data.length / 512), { write: true, edtl: data.length, data })).status,
      ).toBe(Status.GOOD);
      const r = await ini.scsi(read10(3000, data.length / 512), { read: true, edtl: data.length });
      expect(r.status).toBe(Status.GOOD);
      expect(r.data.equals(data)).toBe(true);
      expect(r.dataIns.map((p) => u32(p.bhs, 40))).toEqual(r.dataIns.map((_, i) => i * PDU));
      expect(r.dataIns.map((p) => u32(p.bhs, 36))).toEqual(r.dataIns.map((_, i) => i));
    } finally {
      ini.close();
    }
  });

  it('the same PDU twice (an overlay) is rejected and the connection dropped; the write never completes', async () => {
    const ini = await open({ pdu: 'No', seq: 'No' });
    const data = randomBytes(BURST);
    const itt = sendWrite(ini, 3500, data);
    const r2t = (await r2ts(ini, itt, 1))[0]!;
    const ps = pieces(0, BURST, r2t.ttt);
    // Seven PDUs, then the third again (no F anywhere: only the overlay can be the error).
    for (const p of [...ps.slice(0, 7), { ...ps[2]!, dataSN: 7 }]) {
      ini.send(
        dataOutBhs({ final: false, itt, ttt: p.ttt, dataSN: p.dataSN, bufferOffset: p.offset }),
        data.subarray(p.offset, p.offset + p.length),
      );
    }
    await expectRejectAndClose(ini, itt);
  });

  it('a PDU that partly overlays another is rejected', async () => {
    const ini = await open({ pdu: 'No', seq: 'No' });
    const data = randomBytes(BURST);
    const itt = sendWrite(ini, 3600, data);
    const r2t = (await r2ts(ini, itt, 1))[0]!;
    ini.send(
      dataOutBhs({ final: false, itt, ttt: r2t.ttt, dataSN: 0, bufferOffset: 0 }),
      data.subarray(0, PDU),
    );
    ini.send(
      dataOutBhs({ final: false, itt, ttt: r2t.ttt, dataSN: 1, bufferOffset: PDU / 2 }),
      data.subarray(PDU / 2, PDU / 2 + PDU),
    );
    await expectRejectAndClose(ini, itt);
  });

  it('a missing PDU: F on the last PDU sent with a hole left is rejected', async () => {
    const ini = await open({ pdu: 'No', seq: 'No' });
    const data = randomBytes(BURST);
    const itt = sendWrite(ini, 3700, data);
    const r2t = (await r2ts(ini, itt, 1))[0]!;
    const ps = shuffle(pieces(0, BURST, r2t.ttt), 42);
    sendPieces(ini, itt, data, ps.slice(1), seqKey); // one PDU never sent
    await expectRejectAndClose(ini, itt);
  });

  it('a missing PDU without F: the command waits (never runs with a hole) and can be aborted', async () => {
    const ini = await open({ pdu: 'No', seq: 'No' });
    try {
      const data = randomBytes(BURST);
      const itt = sendWrite(ini, 3800, data);
      const r2t = (await r2ts(ini, itt, 1))[0]!;
      const ps = pieces(0, BURST, r2t.ttt);
      for (const p of [...ps.slice(0, 3), ...ps.slice(4)]) {
        ini.send(
          dataOutBhs({ final: false, itt, ttt: p.ttt, dataSN: p.dataSN, bufferOffset: p.offset }),
          data.subarray(p.offset, p.offset + p.length),
        );
      }
      expect(await ini.maybePdu(500)).toBeNull(); // no status: 8 KiB are missing
      const tmf = await ini.tmf({ fn: 1, rtt: itt, refCmdSN: ini.cmdSN - 1 });
      expect(tmf.opcode).toBe(Opcode.TASK_MGMT_RESPONSE);
      expect(tmf.bhs[2]).toBe(0); // Function complete
      // Nothing of the aborted write reached the medium.
      const before = await readBack(ini, 3800, BURST);
      expect(before.equals(data)).toBe(false);
      expect(before.subarray(0, PDU).equals(data.subarray(0, PDU))).toBe(false);
    } finally {
      ini.close();
    }
  });

  it('a PDU running past the end of its R2T is rejected', async () => {
    const ini = await open({ pdu: 'No', seq: 'No' });
    const data = randomBytes(2 * BURST);
    const itt = sendWrite(ini, 3900, data);
    const got = await r2ts(ini, itt, 2);
    ini.send(
      dataOutBhs({ final: false, itt, ttt: got[0]!.ttt, dataSN: 0, bufferOffset: BURST - PDU / 2 }),
      data.subarray(BURST - PDU / 2, BURST + PDU / 2),
    );
    await expectRejectAndClose(ini, itt);
  });

  it('unsolicited Data-Out beyond FirstBurstLength is rejected', async () => {
    const ini = await open({ pdu: 'No', seq: 'No', initialR2T: 'No' });
    const data = randomBytes(2 * BURST);
    const itt = sendWrite(ini, 4000, data, 0, false);
    ini.send(
      dataOutBhs({ final: false, itt, ttt: RESERVED_TAG, dataSN: 0, bufferOffset: BURST }),
      data.subarray(BURST, BURST + PDU),
    );
    await expectRejectAndClose(ini, itt);
  });

  it('DataSNs that are not 0..n-1 drop the connection when the sequence ends (RFC 7143 11.7.5)', async () => {
    const ini = await open({ pdu: 'No', seq: 'No' });
    const data = randomBytes(BURST);
    const itt = sendWrite(ini, 4100, data);
    const r2t = (await r2ts(ini, itt, 1))[0]!;
    const ps = pieces(0, BURST, r2t.ttt).map((p) => ({ ...p, dataSN: p.dataSN === 7 ? 27 : p.dataSN }));
    sendPieces(ini, itt, data, shuffle(ps, 8), seqKey);
    const got = await ini.expectClose(3000);
    expect(got.some((p) => p.itt === itt && p.opcode === Opcode.SCSI_RESPONSE)).toBe(false);
  });

  it('a task object reused after an aborted write keeps nothing of it: a Data-Out matching the old sequence does not fit', async () => {
    const ini = await open({ pdu: 'No', seq: 'No', initialR2T: 'No', immediateData: 'Yes' });
    try {
      // A write with an open unsolicited burst, aborted: its task object goes back to the pool.
      const a = sendWrite(ini, 4300, randomBytes(BURST), 512, false);
      const tmf = await ini.tmf({ fn: 1, rtt: a, refCmdSN: ini.cmdSN - 1 });
      expect(tmf.bhs[2]).toBe(0);
      // The next write takes that object again; a Data-Out inside the old burst's range must not fit.
      await strayDataOutForHeldWrite(ini, 4310, 'immediate');
    } finally {
      ini.close();
    }
  });

  it('after all of the above the target still serves a fresh initiator', async () => {
    const ini = await open({ pdu: 'No', seq: 'No' });
    try {
      const data = randomBytes(BURST);
      expect((await ini.scsi(write10(5000, 128), { write: true, edtl: BURST, data })).status).toBe(
        Status.GOOD,
      );
      expect((await readBack(ini, 5000, BURST)).equals(data)).toBe(true);
    } finally {
      ini.close();
    }
    expect(t.proc.exitCode).toBeNull();
  });
});
