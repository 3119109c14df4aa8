/**
 * A two-node cluster carried through a Redis outage shorter than the lease (a restart, a
 * Sentinel failover): the scenario both outage tests run, with the outage itself given
 * by the test. It asserts, with vitest's expect:
 *
 *   - READ/WRITE through both nodes carry on during the outage and see no error beyond
 *     what a multipath host retries (NOT READY 04/0A, unit attentions); every READ
 *     returns what the last GOOD WRITE of its block wrote;
 *   - the reservation holds throughout: an unregistered host's WRITEs under Write
 *     Exclusive - Registrants Only keep getting RESERVATION CONFLICT;
 *   - PR OUT while Redis is away gets CHECK CONDITION 02/04/0A through either node, and
 *     changes nothing: keys, PRgeneration and the reservation are the same afterwards;
 *   - afterwards PR OUT works, and a PREEMPT through one node is in force on the other.
 *
 * The loops are returned, so a test can look at the retries too.
 */
import { expect } from 'vitest';
import type { StartedCluster } from './cluster.ts';
import {
  closeAll,
  conflict,
  good,
  IoLoop,
  linesOf,
  loginHost,
  notReady,
  pastAccessStateChanged,
  prout,
  readKeys,
  readReservation,
  SA,
  ScsiStatus,
  SENSE,
  senseOf,
  sleep,
  stamp,
  TYPE,
  until,
  writeBlocks,
  registerKey,
} from './cluster-scsi.ts';

export interface OutageResult {
  /** I/O loops: registered host through a, registered host through b, unregistered host through b. */
  loops: IoLoop[];
  /** How long Redis was away (ms, from `outage`'s own measure). */
  outageMs: number;
}

export interface OutageScenario {
  /** Prefix of initiator names (unique per scenario in a file). */
  name: string;
  /**
   * Take Redis away and bring it back; call `whileDown()` (it sends PR OUT through both
   * nodes, each expected to get 02/04/0A) while it is certainly away, if there is such a
   * moment. Resolves with the time Redis was away (ms).
   */
  outage(whileDown: () => Promise<void>): Promise<number>;
}

export async function runThroughOutage(c: StartedCluster, sc: OutageScenario): Promise<OutageResult> {
  const KA = 0xa1n;
  const KB = 0xb2n;
  const KIA = 0x1a1n;
  const KIB = 0x1b2n;
  // PR OUT and I/O on separate sessions (the test initiator runs one command at a time per
  // session): the holder and a registrant for PR OUT, a registered I/O host through each
  // node, an unregistered host doing I/O through b, a host for PR IN through a.
  const holder = await loginHost(c, 0, `${sc.name}-holder-a`);
  const registrant = await loginHost(c, 1, `${sc.name}-registrant-b`);
  const ioA = await loginHost(c, 0, `${sc.name}-io-a`);
  const ioB = await loginHost(c, 1, `${sc.name}-io-b`);
  const outsider = await loginHost(c, 1, `${sc.name}-outsider-b`);
  const prA = await loginHost(c, 0, `${sc.name}-pr-a`);
  let loops: IoLoop[] = [];
  try {
    await registerKey(holder, KA, 'holder registers through a');
    await registerKey(registrant, KB, 'registrant registers through b');
    await registerKey(ioA, KIA, 'I/O host registers through a');
    await registerKey(ioB, KIB, 'I/O host registers through b');
    good(await prout(holder, SA.RESERVE, TYPE.WERO, { key: KA }), 'holder RESERVE WERO through a');
    const keysBefore = await readKeys(outsider);
    expect(keysBefore.keys).toEqual([KA, KB, KIA, KIB]);
    const resBefore = await readReservation(outsider);
    expect(resBefore).toMatchObject({ key: KA, type: TYPE.WERO });
    const reconnectsBefore = [0, 1].map((i) => linesOf(c, i, 'redis connection re-established').length);
    const fencesBefore = [0, 1].map((i) => linesOf(c, i, 'lease not renewed in time').length);

    // Steady I/O through both nodes, retrying what a multipath host retries.
    loops = [
      new IoLoop(ioA, { lba: 0, blocks: 64, tag: 'IO_A', retryForMs: 5000 }),
      new IoLoop(ioB, { lba: 64, blocks: 64, tag: 'IO_B', retryForMs: 5000 }),
      new IoLoop(outsider, { lba: 128, blocks: 64, tag: 'OUTS', retryForMs: 5000 }),
    ];
    await sleep(500);

    const startedAt = Date.now();
    const outageMs = await sc.outage(async () => {
      // Through both nodes: a change, a registration, and a no-op: all refused, unknown
      // whether they would change anything.
      notReady(
        await prout(registrant, SA.PREEMPT, TYPE.WERO, { key: KB, saKey: KA }),
        'PREEMPT through b while Redis is away',
      );
      notReady(
        await prout(prA, SA.REGISTER_AND_IGNORE_EXISTING_KEY, 0, { saKey: 0xc3n }),
        'REGISTER through a while Redis is away',
      );
      notReady(
        await prout(holder, SA.RESERVE, TYPE.WERO, { key: KA }),
        "holder's repeated RESERVE through a while Redis is away",
      );
    });

    // Both nodes find Redis again; I/O carries on a while longer.
    await until(
      'both nodes reconnected',
      () =>
        [0, 1].every((i) => linesOf(c, i, 'redis connection re-established').length > reconnectsBefore[i]!),
      30_000,
    );
    await sleep(1500);
    await Promise.all(loops.map((l) => l.stop()));
    for (const l of loops) expect(l.error, 'I/O loop').toBeNull();

    const [la, lb, lo] = loops as [IoLoop, IoLoop, IoLoop];
    const during = (l: IoLoop): number =>
      l.records.filter((r) => r.wall >= startedAt && r.wall <= startedAt + outageMs).length;
    console.log(
      `${sc.name}: Redis away ${outageMs} ms; commands completed meanwhile: ${during(la)} through a, ${during(lb) + during(lo)} through b; ` +
        `in all ${la.records.length + lb.records.length + lo.records.length}; retried ${loops.map((l) => l.retries().length).join('/')}`,
    );
    expect(during(la), 'I/O through a went on while Redis was away').toBeGreaterThan(0);
    expect(during(lb), 'I/O through b went on while Redis was away').toBeGreaterThan(0);
    expect(la.unexpected(), 'registered I/O through a').toEqual([]);
    expect(lb.unexpected(), 'registered I/O through b').toEqual([]);
    // The reservation held throughout: the outsider's WRITEs conflicted, its READs were GOOD.
    expect(
      lo.unexpected(
        (r) => r.status === (r.op === 'write' ? ScsiStatus.RESERVATION_CONFLICT : ScsiStatus.GOOD),
      ),
      'unregistered I/O through b (WERO)',
    ).toEqual([]);
    for (const i of [0, 1])
      expect(
        linesOf(c, i, 'lease not renewed in time').length,
        `node ${c.nodes[i]!.id} never lost its lease`,
      ).toBe(fencesBefore[i]);
    for (const i of [0, 1])
      expect(
        linesOf(c, i, 'Redis has lost the cluster state'),
        `node ${c.nodes[i]!.id}: no data loss`,
      ).toEqual([]);

    // Nothing changed, through either node.
    expect(await readKeys(prA), 'keys through a').toEqual(keysBefore);
    expect(await readKeys(outsider), 'keys through b').toEqual(keysBefore);
    expect(await readReservation(prA), 'reservation through a').toEqual(resBefore);

    // PR OUT works again, and is in force on the other node at once. (Hosts may first
    // learn of access state changes: 06/2A/06.)
    good(
      await pastAccessStateChanged(() => prout(registrant, SA.PREEMPT, TYPE.WERO, { key: KB, saKey: KA })),
      'PREEMPT through b after the outage',
    );
    expect(await readKeys(prA)).toEqual({ generation: keysBefore.generation + 1, keys: [KB, KIA, KIB] });
    const first = await pastAccessStateChanged(() => writeBlocks(holder, 0, stamp('HOLD', 1 << 30, 0, 1)));
    expect(senseOf(first.sense), 'the preempted holder is told through a').toEqual(
      SENSE.REGISTRATIONS_PREEMPTED,
    );
    conflict(await writeBlocks(holder, 0, stamp('HOLD', 1 << 30, 0, 1)), 'preempted holder writes through a');
    good(
      await pastAccessStateChanged(() => writeBlocks(ioA, 0, stamp('IO_A', 1 << 30, 0, 1))),
      'registrant writes through a under the new holder',
    );
    good(await prout(registrant, SA.CLEAR, 0, { key: KB }), 'CLEAR');
    return { loops, outageMs };
  } finally {
    await Promise.all(loops.map((l) => l.stop()));
    closeAll(holder, registrant, ioA, ioB, outsider, prA);
  }
}
