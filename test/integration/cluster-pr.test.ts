/**
 * Persistent reservations across cluster nodes (issue 10, "Fencing that holds"): two
 * spindle nodes as separate processes on 127.0.0.1 and 127.0.0.2, one shared backing
 * file, reservations in a real redis-server. Hosts reach the LU through different nodes,
 * as multipath hosts and failover clusters do.
 *
 * 1. A reservation change reported GOOD through one node is in force on the other at
 *    once: the very next command through the other node meets it.
 * 2. Windows failover cluster arbitration with the two cluster hosts on different nodes.
 * 3. PREEMPT AND ABORT through node A while the preempted host streams WRITEs through
 *    node B: nothing the preempted host wrote reaches the medium after the GOOD.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Opcode, scsiCommandBhs, write10 } from '../helpers/initiator.ts';
import { u32 } from '../../src/shared/iscsi/pdu.ts';
import { performance } from 'node:perf_hooks';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { startCluster, type StartedCluster } from '../helpers/cluster.ts';
import {
  BLOCK,
  blockOf,
  checkCondition,
  closeAll,
  conflict,
  good,
  linesOf,
  loginHost,
  outcomeOf as outcome,
  prout,
  readBlocks,
  readKeys,
  readRegion,
  readReservation,
  readStamp,
  SA,
  ScsiStatus,
  SENSE,
  senseOf,
  sleep,
  stamp,
  tur,
  TYPE,
  writeBlocks,
  WriteStream,
  Pipeline,
  writeSame16,
  type Outcome,
  type Host,
  registerKey,
} from '../helpers/cluster-scsi.ts';

const LEASE = { ttlSec: 3, renewSec: 0.3, marginSec: 0.9 };

let redis: RedisServer;
let c: StartedCluster;

beforeAll(async () => {
  redis = await startRedis({ appendonly: false });
  c = await startCluster({ nodes: 2, redis, lease: LEASE, deviceSize: '1GiB' });
});

afterAll(async () => {
  await c?.close();
  await redis?.close();
});

const A = 0;
const B = 1;

// ---------------------------------------------------------------------------------------------

describe('a reservation change is in force on every node when it is reported', () => {
  it('the very next command through the other node meets it, in both directions, every time', async () => {
    const KH = 0x1001n;
    const KR = 0x1002n;
    const blk = Buffer.alloc(BLOCK, 0x11);
    // The holder on node A, a registrant and an unregistered host on node B; and the
    // mirror image for the other direction.
    const holderA = await loginHost(c, A, 'once-holder-a');
    const regB = await loginHost(c, B, 'once-registrant-b');
    const outsiderB = await loginHost(c, B, 'once-outsider-b');
    const outsiderA = await loginHost(c, A, 'once-outsider-a');
    try {
      await registerKey(holderA, KH, 'holder registers through A');
      await registerKey(regB, KR, 'registrant registers through B');
      for (let round = 0; round < 8; round++) {
        // Write Exclusive through A: on B, neither the registrant nor the outsider may write.
        good(
          await writeBlocks(outsiderB, 16 + round, blk),
          `round ${round}: outsider writes through B before RESERVE`,
        );
        good(await prout(holderA, SA.RESERVE, TYPE.WE, { key: KH }), `round ${round}: RESERVE WE through A`);
        conflict(
          await writeBlocks(outsiderB, 16 + round, blk),
          `round ${round}: outsider's next WRITE through B`,
        );
        conflict(
          await writeBlocks(regB, 16 + round, blk),
          `round ${round}: registrant's next WRITE through B`,
        );
        good(await writeBlocks(holderA, 16 + round, blk), `round ${round}: holder writes through A`);
        // Released through A: the next WRITE through B is GOOD again.
        good(await prout(holderA, SA.RELEASE, TYPE.WE, { key: KH }), `round ${round}: RELEASE through A`);
        good(
          await writeBlocks(outsiderB, 16 + round, blk),
          `round ${round}: outsider's next WRITE through B after RELEASE`,
        );
        // Exclusive Access through B (the registrant reserves): the next READ through A
        // from a host that is not the holder conflicts (SPC-4 5.14.1 table 62).
        good(await prout(regB, SA.RESERVE, TYPE.EA, { key: KR }), `round ${round}: RESERVE EA through B`);
        conflict(
          await writeBlocks(outsiderA, 16 + round, blk),
          `round ${round}: outsider's next WRITE through A`,
        );
        conflict(
          await readBlocks(outsiderA, 16 + round, 1),
          `round ${round}: outsider's next READ through A under EA`,
        );
        conflict(
          await readBlocks(holderA, 16 + round, 1),
          `round ${round}: other registrant's next READ through A under EA`,
        );
        good(await prout(regB, SA.RELEASE, TYPE.EA, { key: KR }), `round ${round}: RELEASE through B`);
        good(
          await readBlocks(outsiderA, 16 + round, 1),
          `round ${round}: outsider's next READ through A after RELEASE`,
        );
      }
      // PRgeneration and keys agree through both nodes: two registrations, nothing else
      // counts (RESERVE and RELEASE do not change PRgeneration, SPC-4 6.15.2).
      const viaA = await readKeys(outsiderA);
      const viaB = await readKeys(outsiderB);
      expect(viaA).toEqual(viaB);
      expect(viaA.keys).toEqual([KH, KR]);
    } finally {
      await prout(holderA, SA.CLEAR, 0, { key: KH }).catch(() => undefined);
      closeAll(holderA, regB, outsiderB, outsiderA);
    }
  });
});

// ---------------------------------------------------------------------------------------------

/** Keys as a Windows cluster builds them: a per-node part and a signature in the low half. */
const keyOfNode = (n: number): bigint => (BigInt(n) << 32n) | 0x4d534654n;

describe('Windows failover cluster arbitration with the cluster hosts on different nodes', () => {
  it('register, reserve WERO, defend, PREEMPT through the other node: both nodes agree at every step', async () => {
    const KA = keyOfNode(1);
    const KB = keyOfNode(2);
    const blk = Buffer.alloc(BLOCK, 0x22);
    const owner = await loginHost(c, A, 'win-owner');
    const challenger = await loginHost(c, B, 'win-challenger');
    const outsiderA = await loginHost(c, A, 'win-outsider-a');
    const outsiderB = await loginHost(c, B, 'win-outsider-b');
    /** READ KEYS and READ RESERVATION through both nodes: identical, and as expected. */
    const agree = async (
      keys: bigint[],
      holder: bigint | null,
      generation: number,
      what: string,
    ): Promise<void> => {
      const k = [await readKeys(outsiderA), await readKeys(outsiderB)];
      const r = [await readReservation(outsiderA), await readReservation(outsiderB)];
      expect(k, `${what}: READ KEYS through A and B`).toEqual([
        { generation, keys },
        { generation, keys },
      ]);
      const want = { generation, key: holder, type: holder === null ? 0 : TYPE.WERO };
      expect(r, `${what}: READ RESERVATION through A and B`).toEqual([want, want]);
    };
    try {
      const g0 = (await readKeys(outsiderA)).generation;
      await agree([], null, g0, 'start');
      // Each cluster host joins through its own node: REGISTER AND IGNORE EXISTING KEY,
      // PRgeneration + 1 each (SPC-4 6.15.2).
      good(
        await prout(owner, SA.REGISTER_AND_IGNORE_EXISTING_KEY, 0, { key: 0xdeadn, saKey: KA }),
        'owner registers through A',
      );
      await agree([KA], null, g0 + 1, 'owner registered');
      await registerKey(challenger, KB, 'challenger registers through B');
      await agree([KA, KB], null, g0 + 2, 'both registered');
      good(await writeBlocks(outsiderB, 100, blk), 'outsider writes through B before any reservation');

      // The owner reserves Write Exclusive - Registrants Only through A (no PRgeneration change).
      good(await prout(owner, SA.RESERVE, TYPE.WERO, { key: KA }), 'owner RESERVE WERO through A');
      await agree([KA, KB], KA, g0 + 2, 'owner holds WERO');
      good(await writeBlocks(owner, 101, blk), 'owner (holder) writes through A');
      good(await writeBlocks(challenger, 102, blk), 'challenger (registrant) writes through B');
      conflict(await writeBlocks(outsiderB, 103, blk), 'outsider writes through B under WERO');
      conflict(await writeBlocks(outsiderA, 103, blk), 'outsider writes through A under WERO');
      good(await readBlocks(outsiderB, 100, 4), 'outsider reads through B under WERO');

      // The challenger may not take it while the owner holds it (SPC-4 5.14.9).
      conflict(
        await prout(challenger, SA.RESERVE, TYPE.WERO, { key: KB }),
        'challenger RESERVE through B while the owner holds',
      );
      conflict(
        await prout(outsiderB, SA.PREEMPT, TYPE.WERO, { key: 0n, saKey: KA }),
        'unregistered PREEMPT through B',
      );
      await agree([KA, KB], KA, g0 + 2, 'after refused attempts');

      // The owner defends (re-register, re-reserve); the challenger watches through B.
      let gen = g0 + 2;
      for (let round = 0; round < 3; round++) {
        await registerKey(owner, KA, `defense ${round}: register through A`);
        gen += 1;
        good(await prout(owner, SA.RESERVE, TYPE.WERO, { key: KA }), `defense ${round}: reserve through A`);
        expect(await readKeys(challenger), `defense ${round}: challenger READ KEYS through B`).toEqual({
          generation: gen,
          keys: [KA, KB],
        });
      }

      // The owner hangs; the challenger preempts it through node B.
      good(
        await prout(challenger, SA.PREEMPT, TYPE.WERO, { key: KB, saKey: KA }),
        'challenger PREEMPT through B',
      );
      gen += 1;
      await agree([KB], KB, gen, 'after PREEMPT');
      good(await tur(challenger), 'challenger (issuer) gets no unit attention');
      good(await tur(outsiderA), 'unregistered host on A gets no unit attention');
      good(await writeBlocks(challenger, 104, blk), 'new holder writes through B');

      // The owner wakes up on node A: REGISTRATIONS PREEMPTED, once; then it is an
      // unregistered host under WERO (SPC-4 5.14.11.4.3).
      checkCondition(
        await writeBlocks(owner, 105, blk),
        SENSE.REGISTRATIONS_PREEMPTED,
        "owner's first command through A after the PREEMPT",
      );
      conflict(await writeBlocks(owner, 105, blk), 'owner writes through A after being preempted');
      good(await readBlocks(owner, 100, 4), 'owner reads through A after being preempted');
      conflict(
        await prout(owner, SA.RESERVE, TYPE.WERO, { key: KA }),
        'owner RESERVE with its preempted key',
      );
      conflict(await prout(owner, SA.PREEMPT, TYPE.WERO, { key: KA, saKey: KB }), 'owner counter-PREEMPT');
      await agree([KB], KB, gen, 'after the refused counter-attack');

      // The owner rejoins as a registrant and may write again.
      await registerKey(owner, KA, 'owner rejoins through A');
      gen += 1;
      await agree([KB, KA], KB, gen, 'owner rejoined');
      good(await writeBlocks(owner, 106, blk), 'owner (registrant) writes through A');

      // Orderly end: RELEASE of a registrants-only type tells the other registrants
      // (RESERVATIONS RELEASED, SPC-4 5.14.11.2.2), on the other node too.
      good(await prout(challenger, SA.RELEASE, TYPE.WERO, { key: KB }), 'challenger RELEASE through B');
      checkCondition(await tur(owner), SENSE.RESERVATIONS_RELEASED, 'owner on A after the RELEASE through B');
      good(await tur(challenger), 'issuer of the RELEASE gets no unit attention');
      await agree([KB, KA], null, gen, 'released');
      good(await writeBlocks(outsiderA, 107, blk), 'outsider writes through A without reservation');
      good(await prout(owner, SA.REGISTER, 0, { key: KA, saKey: 0n }), 'owner unregisters');
      good(await prout(challenger, SA.REGISTER, 0, { key: KB, saKey: 0n }), 'challenger unregisters');
      await agree([], null, gen + 2, 'end');
    } finally {
      closeAll(owner, challenger, outsiderA, outsiderB);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('PREEMPT AND ABORT through node A while the preempted host streams WRITEs through node B', () => {
  const WRITES = 512;
  const BLOCKS_PER_WRITE = 128; // 64 KiB
  const DEPTH = 96;
  const RUN_BLOCKS = WRITES * BLOCKS_PER_WRITE;
  const FIRST_RUN_LBA = 65536;

  it.each([
    { run: 0, fenceAfterGood: 1 },
    { run: 1, fenceAfterGood: 48 },
    { run: 2, fenceAfterGood: 200 },
  ])(
    'no WRITE of the preempted host reaches the medium after the GOOD (fence after $fenceAfterGood GOOD)',
    async ({ run, fenceAfterGood }) => {
      const KW = 0xa000n + BigInt(run);
      const KF = 0xf000n + BigInt(run);
      const base = FIRST_RUN_LBA + run * RUN_BLOCKS;
      const writer = await loginHost(c, B, `pa-writer-${run}`);
      const fencer = await loginHost(c, A, `pa-fencer-${run}`);
      let writerLater: Host | undefined;
      try {
        await registerKey(writer, KW, 'writer registers through B');
        await registerKey(fencer, KF, 'fencer registers through A');
        good(await prout(writer, SA.RESERVE, TYPE.WE, { key: KW }), 'writer RESERVE WE through B');
        conflict(
          await writeBlocks(fencer, base, stamp('FNCR', 0, base, 1)),
          'fencer (registrant, not holder) writes through A under WE',
        );

        const stream = new WriteStream(writer, {
          lba: base,
          writes: WRITES,
          blocksPerWrite: BLOCKS_PER_WRITE,
          depth: DEPTH,
          tag: 'WRTR',
        });
        await stream.waitGood(fenceAfterGood);
        const sentBefore = stream.sent;
        const paSentAt = performance.now();
        const pa = await prout(fencer, SA.PREEMPT_AND_ABORT, TYPE.WE, { key: KF, saKey: KW });
        const goodAt = performance.now();
        good(pa, 'PREEMPT AND ABORT through A');
        const sentAtGood = stream.sent;

        // S1 at once, through A: first the writes that were in flight, then the rest.
        const first = Math.max(0, sentBefore - DEPTH - 8);
        const last = Math.min(WRITES, sentAtGood + 8);
        const order = [
          [first, last],
          [0, first],
          [last, WRITES],
        ] as const;
        const snapshot = async (): Promise<Buffer> => {
          const region = Buffer.alloc(RUN_BLOCKS * BLOCK);
          for (const [from, to] of order) {
            if (to <= from) continue;
            const data = await readRegion(
              fencer,
              base + from * BLOCKS_PER_WRITE,
              (to - from) * BLOCKS_PER_WRITE,
            );
            data.copy(region, from * BLOCKS_PER_WRITE * BLOCK);
          }
          return region;
        };
        const s1 = await snapshot();
        // The writer's pipeline drains; a while later, S2.
        await stream.stop();
        expect(stream.pipe.error, 'writer pipeline').toBeNull();
        await sleep(1000);
        const s2 = await snapshot();

        // No block changed after the GOOD.
        const changed: string[] = [];
        for (let i = 0; i < RUN_BLOCKS; i++) {
          if (!blockOf(s1, i).equals(blockOf(s2, i)))
            changed.push(
              `lba ${base + i}: ${JSON.stringify(readStamp(blockOf(s1, i)))} -> ${JSON.stringify(readStamp(blockOf(s2, i)))}`,
            );
        }
        expect(
          changed.slice(0, 10),
          `${changed.length} blocks changed after the PREEMPT AND ABORT's GOOD`,
        ).toEqual([]);

        // Every write acknowledged GOOD is on the medium; none refused with RESERVATION
        // CONFLICT is; none sent after the GOOD was GOOD.
        const bad: string[] = [];
        let goodCount = 0;
        let refused = 0;
        let ua = 0;
        let noStatus = 0;
        for (const w of stream.writes) {
          const o = w.outcome;
          const blocks = Array.from({ length: w.blocks }, (_, i) =>
            readStamp(blockOf(s1, w.seq * BLOCKS_PER_WRITE + i)),
          );
          const mine = blocks.every(
            (s, i) => s.kind === 'stamp' && s.tag === 'WRTR' && s.seq === w.seq && s.lba === w.lba + i,
          );
          const zero = blocks.every((s) => s.kind === 'zero');
          if (o === undefined || o.status === ScsiStatus.TASK_ABORTED) {
            noStatus++;
            if (!mine && !zero) bad.push(`write ${w.seq} (aborted) left a torn or foreign region`);
            continue;
          }
          if (o.status === ScsiStatus.GOOD) {
            goodCount++;
            if (!mine)
              bad.push(`write ${w.seq} was GOOD but is not on the medium: ${JSON.stringify(blocks[0])}`);
            if (w.sentAt > goodAt)
              bad.push(`write ${w.seq} sent after the PREEMPT AND ABORT's GOOD completed GOOD`);
            continue;
          }
          if (o.status === ScsiStatus.CHECK_CONDITION) {
            // Unit attention REGISTRATIONS PREEMPTED, once, instead of the conflict.
            expect(senseOf(o.sense), `write ${w.seq}`).toEqual(SENSE.REGISTRATIONS_PREEMPTED);
            ua++;
          } else {
            expect(outcome(o), `write ${w.seq}`).toBe(
              `status 0x${ScsiStatus.RESERVATION_CONFLICT.toString(16)}`,
            );
            refused++;
          }
          if (!zero) bad.push(`write ${w.seq} was refused (${outcome(o)}) but reached the medium`);
        }
        expect(bad.slice(0, 10), `${bad.length} violations`).toEqual([]);
        expect(ua, 'REGISTRATIONS PREEMPTED at most once').toBeLessThanOrEqual(1);
        // The race was real: WRITEs were sent before the GOOD and answered after the
        // PREEMPT AND ABORT went out.
        const inFlight = stream.writes.filter(
          (w) => w.sentAt < goodAt && (w.outcome === undefined || w.outcome.at > paSentAt),
        ).length;
        expect(inFlight, 'WRITEs in flight while the PREEMPT AND ABORT ran').toBeGreaterThan(0);
        expect(refused + ua + noStatus, 'writes refused or aborted').toBeGreaterThan(0);
        console.log(
          `PREEMPT AND ABORT run ${run}: ${inFlight} writes in flight, ${sentAtGood} sent by its GOOD, ${goodCount} GOOD, ` +
            `${refused} RESERVATION CONFLICT, ${ua} UA, ${noStatus} without status`,
        );

        // The writer's later commands through B: the unit attention (unless a pipelined
        // write took it), then RESERVATION CONFLICT.
        writerLater = writer;
        if (noStatus > 0) {
          writer.ini.close();
          writerLater = await loginHost(c, B, `pa-writer-${run}`, { settle: false });
        }
        // Unit attentions first: REGISTRATIONS PREEMPTED unless a pipelined WRITE took it
        // (and I_T NEXUS LOSS after a new login).
        const uas: string[] = [];
        let next = await writeBlocks(writerLater, base, stamp('WRTR', 999_999, base, 1));
        for (
          let i = 0;
          i < 4 && next.status === ScsiStatus.CHECK_CONDITION && senseOf(next.sense)?.[0] === 0x06;
          i++
        ) {
          uas.push(senseOf(next.sense)!.join('/'));
          next = await writeBlocks(writerLater, base, stamp('WRTR', 999_999, base, 1));
        }
        expect(
          ua + uas.filter((x) => x === SENSE.REGISTRATIONS_PREEMPTED.join('/')).length,
          `REGISTRATIONS PREEMPTED reported once (later: ${uas.join(', ')})`,
        ).toBe(1);
        conflict(next, "writer's WRITE through B after the PREEMPT AND ABORT");
        conflict(
          await prout(writerLater, SA.RESERVE, TYPE.WE, { key: KW }),
          'writer RESERVE with its preempted key',
        );
        expect(await readReservation(writerLater)).toMatchObject({ key: KF, type: TYPE.WE });
        expect(readStamp((await readBlocks(fencer, base, 1)).data)).toEqual(readStamp(blockOf(s1, 0)));
        good(await prout(fencer, SA.CLEAR, 0, { key: KF }), 'fencer CLEAR');
      } finally {
        await prout(fencer, SA.CLEAR, 0, { key: KF }).catch(() => undefined);
        closeAll(writer, fencer, writerLater);
      }
    },
  );

  // The same with the WRITEs certainly at node b's logical unit when the PREEMPT AND
  // ABORT goes out, and for a while: a long ORDERED WRITE SAME runs there, and WRITEs
  // wait behind it (SAM-5 8.6.3). Node b must not acknowledge the change while any of them
  // admitted under the old reservation can still write, so nothing may change on the
  // medium once the PREEMPT AND ABORT is GOOD. (With a fast disk the stream above leaves
  // only a few fast WRITEs at the logical unit at any moment; this one does not depend
  // on timing.)
  it('no WRITE admitted at node b under the old reservation reaches the medium after the GOOD, however long it runs', async () => {
    const KW = 0xa0ffn;
    const KF = 0xf0ffn;
    // 512 MiB per WRITE SAME (the same range each time): long enough to outlast the
    // PREEMPT AND ABORT's way back to the test and the first READ after it.
    const FILL_BLOCKS = 1_048_576;
    const FILLS = 4;
    const QUEUED = 32;
    const fillLba = 320_000;
    const writesLba = fillLba + FILL_BLOCKS;
    const writer = await loginHost(c, B, 'pa-long-writer');
    const fencer = await loginHost(c, A, 'pa-long-fencer');
    try {
      await registerKey(writer, KW, 'writer registers through B');
      await registerKey(fencer, KF, 'fencer registers through A');
      good(await prout(writer, SA.RESERVE, TYPE.WE, { key: KW }), 'writer RESERVE WE through B');
      const pipe = new Pipeline(writer.ini);
      type Pending = { done: Promise<Outcome | undefined>; outcome?: Outcome | undefined };
      const fills: Pending[] = [];
      for (let i = 0; i < FILLS; i++)
        fills.push({
          done: (await pipe.command(writeSame16(fillLba, FILL_BLOCKS), stamp('FILL', i, fillLba, 1), 2)).done,
        });
      const writes: Pending[] = [];
      for (let i = 0; i < QUEUED; i++) {
        const lba = writesLba + i * 8;
        writes.push({ done: (await pipe.write(lba, stamp('QUED', i, lba, 8))).done });
      }
      for (const p of [...fills, ...writes]) void p.done.then((o) => (p.outcome = o));
      await sleep(100);
      const waiting = fills.filter((f) => !('outcome' in f)).length;
      expect(
        waiting,
        'WRITE SAMEs still running or waiting at b when the PREEMPT AND ABORT goes out',
      ).toBeGreaterThan(1);

      good(
        await prout(fencer, SA.PREEMPT_AND_ABORT, TYPE.WE, { key: KF, saKey: KW }),
        'PREEMPT AND ABORT through A',
      );
      const goodAt = performance.now();
      const region = async (): Promise<Buffer> =>
        Buffer.concat([
          // The end of the range first: a WRITE SAME still running writes it last.
          await readRegion(fencer, fillLba + FILL_BLOCKS - 256, 256),
          await readRegion(fencer, writesLba, QUEUED * 8),
          await readRegion(fencer, fillLba, 256),
        ]);
      const s1 = await region();
      for (const p of [...fills, ...writes]) p.outcome = await p.done;
      await sleep(500);
      const s2 = await region();
      expect(s2.equals(s1), 'the medium changed after the PREEMPT AND ABORT was GOOD').toBe(true);

      // Each WRITE is either GOOD, done before the GOOD and on the medium, or refused and
      // nowhere on it.
      const rc = `status 0x${ScsiStatus.RESERVATION_CONFLICT.toString(16)}`;
      const bad: string[] = [];
      writes.forEach((w, i) => {
        const o = w.outcome === undefined ? 'none' : outcome(w.outcome);
        const blocks = Array.from({ length: 8 }, (_, j) => readStamp(blockOf(s1, 256 + i * 8 + j)));
        if (o === 'GOOD') {
          if (
            !blocks.every(
              (s, j) =>
                s.kind === 'stamp' && s.tag === 'QUED' && s.seq === i && s.lba === writesLba + i * 8 + j,
            )
          )
            bad.push(`queued WRITE ${i}: GOOD but not on the medium`);
          if (w.outcome!.at > goodAt + 50)
            bad.push(
              `queued WRITE ${i}: GOOD ${Math.round(w.outcome!.at - goodAt)} ms after the PREEMPT AND ABORT`,
            );
        } else if (
          o === rc ||
          (w.outcome?.status === ScsiStatus.CHECK_CONDITION && senseOf(w.outcome.sense)?.[0] === 0x06)
        ) {
          if (!blocks.every((s) => s.kind === 'zero'))
            bad.push(`queued WRITE ${i}: refused but on the medium`);
        } else bad.push(`queued WRITE ${i}: ${o}`);
      });
      fills.forEach((f, i) => {
        const o = f.outcome === undefined ? 'none' : outcome(f.outcome);
        if (o === 'GOOD' && f.outcome!.at > goodAt + 50)
          bad.push(
            `WRITE SAME ${i}: GOOD ${Math.round(f.outcome!.at - goodAt)} ms after the PREEMPT AND ABORT`,
          );
        else if (
          o !== 'GOOD' &&
          o !== rc &&
          !(f.outcome?.status === ScsiStatus.CHECK_CONDITION && senseOf(f.outcome.sense)?.[0] === 0x06)
        )
          bad.push(`WRITE SAME ${i}: ${o}`);
      });
      expect(bad, 'outcomes at b').toEqual([]);
      console.log(
        `PREEMPT AND ABORT with ${waiting} WRITE SAMEs and ${QUEUED} WRITEs at b: WRITE SAMEs ${fills.map((f) => (f.outcome === undefined ? 'none' : outcome(f.outcome))).join(', ')}; ` +
          `WRITEs ${writes.filter((w) => w.outcome?.status === ScsiStatus.GOOD).length} GOOD`,
      );
      good(await prout(fencer, SA.CLEAR, 0, { key: KF }), 'fencer CLEAR');
    } finally {
      await prout(fencer, SA.CLEAR, 0, { key: KF }).catch(() => undefined);
      closeAll(writer, fencer);
    }
  });

  // SPC-4 5.14.11.4.5: PREEMPT AND ABORT aborts the preempted nexuses' tasks. A WRITE whose
  // CDB node b has (it asked for the data with an R2T) but whose data has not come is such
  // a task: node b must abort it rather than wait for data a preempted host may never send,
  // and the data, if it comes after the GOOD, must not reach the medium.
  it('a WRITE at node b still waiting for its data is aborted, not waited for', async () => {
    const KW = 0xa0een;
    const KF = 0xf0een;
    const lba = 1_500_000;
    const writer = await loginHost(c, B, 'pa-r2t-writer', {
      keys: [
        ['InitialR2T', 'Yes'],
        ['ImmediateData', 'No'],
      ],
    });
    const fencer = await loginHost(c, A, 'pa-r2t-fencer');
    try {
      await registerKey(writer, KW, 'writer registers through B');
      await registerKey(fencer, KF, 'fencer registers through A');
      good(await prout(writer, SA.RESERVE, TYPE.WE, { key: KW }), 'writer RESERVE WE through B');
      const revocationsBefore = linesOf(c, A, 'revoking their leases').length;
      const ini = writer.ini;
      const data = stamp('R2TW', 0, lba, 8);
      const itt = ini.allocItt();
      ini.send(
        scsiCommandBhs({
          final: true,
          write: true,
          attr: 1,
          lun: 0,
          itt,
          edtl: data.length,
          cmdSN: ini.takeCmdSN(),
          expStatSN: ini.expStatSN,
          cdb: write10(lba, 8),
        }),
      );
      const r2t = await ini.waitFor((p) => p.itt === itt && p.opcode === Opcode.R2T, 10_000);

      const sentAt = performance.now();
      const pa = await prout(fencer, SA.PREEMPT_AND_ABORT, TYPE.WE, { key: KF, saKey: KW });
      const took = performance.now() - sentAt;
      good(pa, 'PREEMPT AND ABORT through A');
      const before = await readRegion(fencer, lba, 8);
      ini.sendDataOut(itt, 0, r2t.ttt, data, u32(r2t.bhs, 40), u32(r2t.bhs, 44));
      const rsp = await ini
        .waitFor((p) => p.itt === itt && p.opcode === Opcode.SCSI_RESPONSE, 3_000)
        .catch(() => null);
      await sleep(300);
      const after = await readRegion(fencer, lba, 8);
      console.log(
        `PREEMPT AND ABORT with a WRITE waiting for data at b: GOOD after ${Math.round(took)} ms; the WRITE then ended ${rsp === null ? 'without status' : `with status 0x${rsp.bhs[3]!.toString(16)}`}`,
      );
      expect(
        before.equals(after) && after.every((x) => x === 0),
        'the WRITE reached the medium after the GOOD',
      ).toBe(true);
      expect(rsp?.bhs[3], 'the WRITE is not GOOD').not.toBe(ScsiStatus.GOOD);
      // Node b did not have to be fenced for it: it answered by itself, in time.
      expect(linesOf(c, A, 'revoking their leases').length, "node b's lease was not revoked").toBe(
        revocationsBefore,
      );
      expect(took, 'PREEMPT AND ABORT answered without waiting out the acknowledgement timeout').toBeLessThan(
        (LEASE.ttlSec * 1000) / 2,
      );
      good(await prout(fencer, SA.CLEAR, 0, { key: KF }), 'fencer CLEAR');
    } finally {
      await prout(fencer, SA.CLEAR, 0, { key: KF }).catch(() => undefined);
      closeAll(writer, fencer);
    }
  });
});
