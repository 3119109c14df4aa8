/**
 * The latency probe's lean initiator against a scripted target on a real loopback socket:
 * login keys and what it settles on, the UNIT ATTENTION on the first command, READ
 * CAPACITY(16), READ(10) walking the LU by the prime step, WRITE(10) data through
 * immediate data, unsolicited Data-Out and R2T, the CmdSN window, PR OUT REGISTER key
 * chaining, and the receive state machine fed one byte at a time.
 */
import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import { LeanInitiator, ProbeOp } from '../../../bench/probe/iscsi-client.ts';
import { negotiate, parseKeys } from '../../../bench/probe/negotiation.ts';
import { prKey, snGreater } from '../../../bench/probe/pdu.ts';

const BHS = 48;
const BLOCK = 512;

interface FakeOptions {
  /** Keys the target answers at login. */
  keys: Record<string, string>;
  /** Commands the target admits beyond ExpCmdSN - 1 (MaxCmdSN = ExpCmdSN + window - 1). */
  window: number;
  /** Write every PDU one byte per socket write. */
  trickle?: boolean;
  capacityBytes?: number;
  /** Complete reads with a separate SCSI Response instead of status in the Data-In. */
  separateReadStatus?: boolean;
}

interface Seen {
  loginKeys: Record<string, string>;
  lbas: { op: number; lba: number; cmdSN: number }[];
  /** Bytes of write data received per command, and whether they all were the pattern. */
  writes: { bytes: number; allPattern: boolean; unsolicited: number; solicited: number }[];
  prKeys: { rk: bigint; sark: bigint; flags: number }[];
  windowViolations: number;
  /** Data-Out PDUs out of order: wrong BufferOffset or DataSN (RFC 7143 11.7.4, 11.7.5). */
  dataOutErrors: number;
  tursSeen: number;
}

/** A minimal iSCSI target: just what the probe sends, answered by the RFC 7143 rules. */
function fakeTarget(o: FakeOptions): Promise<{ port: number; seen: Seen; close: () => Promise<void> }> {
  const seen: Seen = {
    loginKeys: {},
    lbas: [],
    writes: [],
    prKeys: [],
    windowViolations: 0,
    dataOutErrors: 0,
    tursSeen: 0,
  };
  const capacity = o.capacityBytes ?? 64 * 1024 * 1024;
  const server = net.createServer((sock) => {
    sock.setNoDelay(true);
    let rx = Buffer.alloc(0);
    let statSN = 100;
    let expCmdSN = 1;
    // The window frees a slot per completed command, as a target's task set does: with
    // CmdSN starting at 1, commands up to (completions + window) are admitted.
    let completions = 0;
    let advertisedMax = 0;
    const maxCmdSN = (): number => completions + o.window;
    /** Writes in progress by ITT: expected length, received bytes. */
    const pending = new Map<
      number,
      {
        edtl: number;
        got: number;
        allPattern: boolean;
        lun: Buffer;
        unsolicited: number;
        solicited: number;
        ttt: number;
        /** DataSN expected next within the current sequence (unsolicited burst or R2T). */
        dataSN: number;
      }
    >();
    let nextTtt = 1;

    const send = (bhs: Buffer, data: Buffer = Buffer.alloc(0)): void => {
      bhs[5] = (data.length >>> 16) & 0xff;
      bhs[6] = (data.length >>> 8) & 0xff;
      bhs[7] = data.length & 0xff;
      const pad = Buffer.alloc((4 - (data.length % 4)) % 4);
      const pdu = Buffer.concat([bhs, data, pad]);
      if (o.trickle) for (const b of pdu) sock.write(Buffer.from([b]));
      else sock.write(pdu);
    };
    const seq = (b: Buffer, withStatSN: boolean): void => {
      b.writeUInt32BE(withStatSN ? statSN++ : statSN, 24);
      b.writeUInt32BE(expCmdSN, 28);
      advertisedMax = maxCmdSN();
      b.writeUInt32BE(advertisedMax, 32);
    };
    const response = (itt: number, status: number, sense?: Buffer): void => {
      completions++;
      const b = Buffer.alloc(BHS);
      b[0] = 0x21;
      b[1] = 0x80;
      b[3] = status;
      b.writeUInt32BE(itt, 16);
      seq(b, true);
      send(b, sense === undefined ? undefined : Buffer.concat([Buffer.from([0, sense.length]), sense]));
    };
    const dataIn = (itt: number, data: Buffer, withStatus: boolean): void => {
      if (withStatus) completions++;
      const b = Buffer.alloc(BHS);
      b[0] = 0x25;
      b[1] = 0x80 | (withStatus ? 0x01 : 0);
      b.writeUInt32BE(itt, 16);
      b.writeUInt32BE(0xffffffff, 20);
      seq(b, withStatus);
      send(b, data);
    };
    const writeData = (itt: number, data: Buffer, solicited: boolean): void => {
      const w = pending.get(itt)!;
      w.got += data.length;
      if (solicited) w.solicited += data.length;
      else w.unsolicited += data.length;
      if (!data.every((v) => v === 0xa5)) w.allPattern = false;
    };
    const maybeR2tOrDone = (itt: number): void => {
      const w = pending.get(itt)!;
      const firstBurst = Number(o.keys['FirstBurstLength'] ?? 65536);
      const initialR2T = o.keys['InitialR2T'] === 'Yes';
      // Unsolicited data still due: wait for it (RFC 7143 13.10, 13.14).
      const unsolicitedDue = initialR2T ? 0 : Math.min(firstBurst, w.edtl);
      if (w.got < unsolicitedDue) return;
      if (w.got < w.edtl) {
        if (w.ttt !== 0) return; // an R2T is outstanding
        const r2t = Buffer.alloc(BHS);
        r2t[0] = 0x31;
        r2t[1] = 0x80;
        w.lun.copy(r2t, 8);
        r2t.writeUInt32BE(itt, 16);
        w.ttt = nextTtt++;
        r2t.writeUInt32BE(w.ttt, 20);
        seq(r2t, false);
        r2t.writeUInt32BE(w.got, 40);
        r2t.writeUInt32BE(w.edtl - w.got, 44);
        send(r2t);
        return;
      }
      seen.writes.push({
        bytes: w.got,
        allPattern: w.allPattern,
        unsolicited: w.unsolicited,
        solicited: w.solicited,
      });
      pending.delete(itt);
      response(itt, 0);
    };

    const handle = (h: Buffer, data: Buffer): void => {
      const op = h[0]! & 0x3f;
      if (op === 0x03) {
        Object.assign(seen.loginKeys, parseKeys(data.toString('utf8')));
        const b = Buffer.alloc(BHS);
        b[0] = 0x23;
        b[1] = 0x87; // T, CSG 1, NSG 3
        h.copy(b, 8, 8, 14); // ISID
        b.writeUInt16BE(7, 14); // TSIH
        b.writeUInt32BE(h.readUInt32BE(16), 16);
        seq(b, true);
        send(
          b,
          Buffer.from(
            Object.entries(o.keys)
              .map(([k, v]) => `${k}=${v}\0`)
              .join(''),
          ),
        );
        return;
      }
      if (op === 0x06) {
        const b = Buffer.alloc(BHS);
        b[0] = 0x26;
        b[1] = 0x80;
        b.writeUInt32BE(h.readUInt32BE(16), 16);
        seq(b, true);
        send(b);
        sock.end();
        return;
      }
      const itt = h.readUInt32BE(16);
      if (op === 0x05) {
        const w = pending.get(itt)!;
        if (h.readUInt32BE(40) !== w.got || h.readUInt32BE(36) !== w.dataSN) seen.dataOutErrors++;
        w.dataSN = (h[1]! & 0x80) !== 0 ? 0 : w.dataSN + 1;
        writeData(itt, data, h.readUInt32BE(20) !== 0xffffffff);
        if ((h[1]! & 0x80) !== 0) {
          if (h.readUInt32BE(20) !== 0xffffffff) w.ttt = 0; // that R2T's burst is complete
          maybeR2tOrDone(itt);
        }
        return;
      }
      if (op !== 0x01) throw new Error(`fake target: opcode 0x${op.toString(16)}`);
      const cmdSN = h.readUInt32BE(24);
      if (cmdSN === expCmdSN) expCmdSN++;
      const cdb = h.subarray(32, 48);
      const edtl = h.readUInt32BE(20);
      switch (cdb[0]) {
        case 0x00: // TEST UNIT READY: POWER ON, RESET once (SAM-5 6.3)
          seen.tursSeen++;
          if (seen.tursSeen === 1)
            response(itt, 2, Buffer.from('700006000000000a00000000290000000000', 'hex'));
          else response(itt, 0);
          return;
        case 0x9e: {
          const d = Buffer.alloc(32);
          const last = capacity / BLOCK - 1;
          d.writeUInt32BE(Math.floor(last / 2 ** 32), 0);
          d.writeUInt32BE(last >>> 0, 4);
          d.writeUInt32BE(BLOCK, 8);
          dataIn(itt, d, true);
          return;
        }
        case 0x28: {
          seen.lbas.push({ op: 0x28, lba: cdb.readUInt32BE(2), cmdSN });
          const d = Buffer.alloc(cdb.readUInt16BE(7) * BLOCK, 0x11);
          if (o.separateReadStatus) {
            dataIn(itt, d, false);
            response(itt, 0);
          } else dataIn(itt, d, true);
          return;
        }
        case 0x2a:
        case 0x5f: {
          if (cdb[0] === 0x2a) seen.lbas.push({ op: 0x2a, lba: cdb.readUInt32BE(2), cmdSN });
          else
            seen.prKeys.push({
              rk: data.readBigUInt64BE(0),
              sark: data.readBigUInt64BE(8),
              flags: data[20]!,
            });
          pending.set(itt, {
            edtl,
            got: 0,
            allPattern: true,
            lun: Buffer.from(h.subarray(8, 16)),
            unsolicited: 0,
            solicited: 0,
            ttt: 0,
            dataSN: 0,
          });
          if (cdb[0] === 0x2a) writeData(itt, data, false);
          else pending.get(itt)!.got = data.length;
          maybeR2tOrDone(itt);
          return;
        }
        default:
          response(itt, 2, Buffer.from('700005000000000a000000002000', 'hex'));
      }
    };

    sock.on('data', (d: Buffer) => {
      rx = Buffer.concat([rx, d]);
      for (;;) {
        if (rx.length < BHS) return;
        const dsl = (rx[5]! << 16) | (rx[6]! << 8) | rx[7]!;
        const total = BHS + rx[4]! * 4 + dsl + ((4 - (dsl % 4)) % 4);
        if (rx.length < total) return;
        const h = Buffer.from(rx.subarray(0, BHS));
        const data = Buffer.from(rx.subarray(BHS + rx[4]! * 4, BHS + rx[4]! * 4 + dsl));
        rx = rx.subarray(total);
        // The window is checked on arrival against the MaxCmdSN last sent; the answer
        // comes a little later, as from a real task set, so commands sent in one burst
        // meet the same window rather than one that their predecessors already moved.
        if ((h[0]! & 0x3f) === 0x01 && snGreater(h.readUInt32BE(24), advertisedMax)) seen.windowViolations++;
        setTimeout(() => handle(h, data), 2);
      }
    });
    sock.on('error', () => undefined);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      resolve({ port, seen, close: () => new Promise<void>((r) => server.close(() => r())) });
    });
  });
}

const TGTD_LIKE = {
  MaxRecvDataSegmentLength: '8192',
  FirstBurstLength: '65536',
  MaxBurstLength: '262144',
  InitialR2T: 'Yes',
  ImmediateData: 'Yes',
  HeaderDigest: 'None',
  DataDigest: 'None',
};

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (closers.length > 0) await closers.pop()!();
});

async function session(o: FakeOptions) {
  const t = await fakeTarget(o);
  closers.push(t.close);
  const ini = await LeanInitiator.connect('127.0.0.1', t.port, 3);
  closers.push(async () => ini.close());
  const neg = await ini.login('iqn.2026-11.io.spindle:test-probe', 'iqn.2026-11.io.spindle:fake');
  await ini.untilReady();
  return { t, ini, neg };
}

describe('pure helpers', () => {
  it('serial number comparison wraps at 2^32', () => {
    expect(snGreater(2, 1)).toBe(true);
    expect(snGreater(1, 2)).toBe(false);
    expect(snGreater(0, 0xffffffff)).toBe(true);
    expect(snGreater(5, 5)).toBe(false);
  });

  it('negotiate: the target declares its MaxRecvDataSegmentLength; unanswered keys keep RFC defaults', () => {
    expect(
      negotiate(parseKeys('MaxRecvDataSegmentLength=8192\0InitialR2T=No\0FirstBurstLength=65536\0')),
    ).toMatchObject({
      targetMaxRecvDataSegmentLength: 8192,
      initialR2T: false,
      immediateData: true,
      firstBurstLength: 65536,
    });
    expect(negotiate({})).toMatchObject({
      targetMaxRecvDataSegmentLength: 8192,
      initialR2T: true,
      firstBurstLength: 65536,
    });
  });

  it('PR keys are never zero and all differ', () => {
    const keys = new Set(Array.from({ length: 1000 }, (_, n) => `${prKey(n).hi}:${prKey(n).lo}`));
    expect(keys.size).toBe(1000);
    expect(prKey(0).lo).not.toBe(0);
  });
});

describe('LeanInitiator against a scripted target', () => {
  it("logs in with libiscsi's keys and absorbs the first UNIT ATTENTION", async () => {
    const { t, neg } = await session({ keys: TGTD_LIKE, window: 64 });
    expect(t.seen.loginKeys).toMatchObject({
      InitiatorName: 'iqn.2026-11.io.spindle:test-probe',
      TargetName: 'iqn.2026-11.io.spindle:fake',
      SessionType: 'Normal',
      HeaderDigest: 'None',
      DataDigest: 'None',
      InitialR2T: 'No',
      ImmediateData: 'Yes',
      MaxRecvDataSegmentLength: '262144',
      FirstBurstLength: '262144',
    });
    expect(neg).toMatchObject({
      targetMaxRecvDataSegmentLength: 8192,
      initialR2T: true,
      firstBurstLength: 65536,
    });
    expect(t.seen.tursSeen).toBe(2);
  });

  it('READ(10) walks the LU by the step, wrapping at the capacity, within the CmdSN window', async () => {
    const capacityBytes = 1024 * 1024; // 256 x 4 KiB
    const { t, ini } = await session({ keys: TGTD_LIKE, window: 4, capacityBytes, separateReadStatus: true });
    const cap = await ini.readCapacity();
    expect(cap).toEqual({ bytes: capacityBytes, blockSize: BLOCK });
    const step = 7 * 4096; // prime number of 4 KiB blocks
    const r = await ini.run({ op: ProbeOp.READ, size: 4096, depth: 8, step, count: 300, warmup: 20 }, cap);
    expect(r.samplesNs).toHaveLength(300);
    expect(Array.from(r.samplesNs).every((ns) => ns > 0)).toBe(true);
    expect(r.seconds).toBeGreaterThan(0);
    const lbas = t.seen.lbas.sort((a, b) => a.cmdSN - b.cmdSN).map((x) => x.lba);
    expect(lbas).toHaveLength(320);
    expect(lbas).toEqual(Array.from({ length: 320 }, (_, i) => ((i * step) % capacityBytes) / BLOCK));
    expect(new Set(lbas.slice(0, 256)).size).toBe(256); // a prime step visits every 4 KiB block once
    expect(t.seen.windowViolations).toBe(0);
    await ini.logout();
  });

  it('WRITE(10) beyond the first burst: immediate data, then Data-Out on R2T, all of it the pattern', async () => {
    const { t, ini } = await session({ keys: TGTD_LIKE, window: 16 });
    const cap = await ini.readCapacity();
    await ini.run(
      { op: ProbeOp.WRITE, size: 128 * 1024, depth: 4, step: 128 * 1024, count: 20, warmup: 2 },
      cap,
    );
    expect(t.seen.writes).toHaveLength(22);
    for (const w of t.seen.writes) {
      expect(w).toEqual({ bytes: 128 * 1024, allPattern: true, unsolicited: 8192, solicited: 120 * 1024 });
    }
    expect(t.seen.dataOutErrors).toBe(0);
    expect(t.seen.windowViolations).toBe(0);
  });

  it('WRITE(10) with InitialR2T=No: immediate data and unsolicited Data-Out up to FirstBurstLength', async () => {
    const { t, ini } = await session({ keys: { ...TGTD_LIKE, InitialR2T: 'No' }, window: 16, trickle: true });
    const cap = await ini.readCapacity();
    await ini.run(
      { op: ProbeOp.WRITE, size: 32 * 1024, depth: 2, step: 7919 * 4096, count: 10, warmup: 0 },
      cap,
    );
    expect(t.seen.writes).toHaveLength(10);
    for (const w of t.seen.writes)
      expect(w).toEqual({ bytes: 32 * 1024, allPattern: true, unsolicited: 32 * 1024, solicited: 0 });
    expect(t.seen.dataOutErrors).toBe(0);
    expect(t.seen.lbas.map((x) => x.lba)).toEqual(
      Array.from({ length: 10 }, (_, i) => ((i * 7919 * 4096) % (64 * 1024 * 1024)) / BLOCK),
    );
  });

  it('PR OUT REGISTER chains the keys: each command moves from the last key to a new one', async () => {
    const { t, ini } = await session({ keys: TGTD_LIKE, window: 8, trickle: true });
    await ini.run(
      { op: ProbeOp.PR_REGISTER, size: 24, depth: 1, step: 0, count: 5, warmup: 1 },
      { bytes: 0, blockSize: BLOCK },
    );
    const key = (n: number): bigint => (BigInt(prKey(n).hi) << 32n) | BigInt(prKey(n).lo);
    expect(t.seen.prKeys).toEqual([
      { rk: 0n, sark: key(0), flags: 0 },
      ...Array.from({ length: 5 }, (_, i) => ({ rk: key(i), sark: key(i + 1), flags: 0 })),
    ]);
    expect(ini.lastRegisteredKey).toEqual(prKey(5));
    expect(await ini.prRegister(prKey(5), { hi: 0, lo: 0 })).toBe(0);
    expect(t.seen.prKeys.at(-1)).toEqual({ rk: key(5), sark: 0n, flags: 0 });
  });

  it('a failed command fails the run with its status and sense', async () => {
    const { ini } = await session({ keys: TGTD_LIKE, window: 8 });
    // An unknown CDB gets CHECK CONDITION from the fake: drive it through the slow path.
    const r = await ini.scsi(new Uint8Array([0xff, 0, 0, 0, 0, 0]));
    expect(r.status).toBe(2);
    expect(r.sense.subarray(0, 3)).toEqual(Buffer.from([0x70, 0x00, 0x05]));
  });
});
