/**
 * The shared-memory counters workers write (shared/metrics/): what each event counts,
 * the latency histogram buckets, slot reuse for connections, and that a reader on
 * another thread sees the writer's values in the same SharedArrayBuffer.
 */
import { describe, expect, it } from 'vitest';
import { Worker } from 'node:worker_threads';
import { LATENCY_BOUNDS_MS, LATENCY_BUCKETS, latencyBucket } from '../../../src/shared/metrics/latency.ts';
import { LunCounters, LunCountersView, type CountedCommand } from '../../../src/shared/metrics/lun-counters.ts';
import { MAX_LU_SLOTS } from '../../../src/shared/unit-slots.ts';
import {
  LOGIN_FAILURE_REASONS,
  MAX_CONNECTION_SLOTS,
  SessionCounters,
  SessionCountersView,
  SessionField,
  loginFailureIndex,
} from '../../../src/shared/metrics/session-counters.ts';

function cmd(op: number, o: Partial<CountedCommand> = {}): CountedCommand {
  return { cdb: Buffer.from([op]), status: 0, dataInLength: 0, dataOutWanted: 0, expectedLength: 0, dataOutLength: 0, aborted: false, metricLu: -1, startMs: 0, ...o };
}

describe('latency buckets', () => {
  it('puts a latency in the first bucket whose bound is not below it; +Inf last', () => {
    expect(LATENCY_BUCKETS).toBe(LATENCY_BOUNDS_MS.length + 1);
    expect(latencyBucket(0)).toBe(0);
    expect(latencyBucket(0.05)).toBe(0); // le 50 µs (bounds are inclusive, as Prometheus `le`)
    expect(latencyBucket(0.0501)).toBe(1);
    expect(latencyBucket(1)).toBe(4);
    expect(latencyBucket(10_000)).toBe(LATENCY_BUCKETS - 2);
    expect(latencyBucket(10_001)).toBe(LATENCY_BUCKETS - 1);
  });
});

describe('LunCounters', () => {
  it('counts reads, writes and others with their bytes, statuses and latency', () => {
    const w = new LunCounters();
    const r = new LunCountersView(w.sab);
    const read = cmd(0x28, { dataInLength: 8192, expectedLength: 4096 });
    w.arrive(read, 3, 100);
    expect(r.lu(3)).toMatchObject({ arrived: 1, completed: 0 });
    w.complete(read, 100.7);
    const write = cmd(0x8a, { dataOutWanted: 4096, dataOutLength: 4096 });
    w.arrive(write, 3, 200);
    w.complete(write, 203);
    const failedRead = cmd(0x08, { status: 0x02, dataInLength: 512, expectedLength: 512 });
    w.arrive(failedRead, 3, 0);
    w.complete(failedRead, 0.01);
    for (const status of [0x28, 0x08, 0x18]) {
      const c = cmd(0x00, { status });
      w.arrive(c, 3, 0);
      w.complete(c, 0);
    }
    const aborted = cmd(0x2a, { aborted: true, dataOutWanted: 512, dataOutLength: 512 });
    w.arrive(aborted, 3, 0);
    w.complete(aborted, 0);
    const s = r.lu(3)!;
    expect(s).toMatchObject({
      arrived: 7,
      completed: 7,
      reads: 2,
      writes: 2,
      others: 3,
      // EDTL 4096 < what the CDB asked: only what went out counts; failed and aborted commands move no bytes.
      readBytes: 4096,
      writeBytes: 4096,
      checkCondition: 1,
      taskSetFull: 1,
      busy: 1,
      reservationConflict: 1,
      aborted: 1,
    });
    expect(s.latency[0]!.buckets[latencyBucket(0.7)]).toBe(1);
    expect(s.latency[0]!.buckets[0]).toBe(1);
    expect(s.latency[0]!.sumS).toBeCloseTo((0.7 + 0.01) / 1000, 9);
    expect(s.latency[1]!.buckets[latencyBucket(3)]).toBe(1);
    expect(s.latency[2]!.buckets.reduce((a, b) => a + b, 0)).toBe(3);
    expect(r.lu(2)!.arrived).toBe(0);
  });

  it('counts a command once (a second complete is a no-op) and ignores units beyond the slots', () => {
    const w = new LunCounters();
    const r = new LunCountersView(w.sab);
    const c = cmd(0x28);
    w.arrive(c, 0, 0);
    w.complete(c, 1);
    w.complete(c, 1);
    expect(r.lu(0)!.completed).toBe(1);
    const far = cmd(0x28);
    w.arrive(far, MAX_LU_SLOTS, 0);
    w.complete(far, 1);
    expect(far.metricLu).toBe(-1);
    expect(r.lu(MAX_LU_SLOTS)).toBeUndefined();
  });

  it('publishes gauges', () => {
    const w = new LunCounters();
    w.publish(5, 2);
    const r = new LunCountersView(w.sab);
    expect([r.inflight, r.units]).toEqual([5, 2]);
  });
});

describe('SessionCounters', () => {
  it('gives each connection its own zeroed slot and a new generation on reuse', () => {
    const w = new SessionCounters();
    const r = new SessionCountersView(w.sab);
    const a = w.openConnection();
    const slot = SessionCounters.slotOf(a);
    expect(slot).toBeGreaterThan(0);
    w.commandDone(a, { read: true, write: false, edtl: 4096, dataInLength: 8192, received: 0 });
    w.commandDone(a, { read: false, write: true, edtl: 1024, dataInLength: 0, received: 1024 });
    w.reject(a, 0x04);
    w.dataDigestError(a);
    w.headerDigestError(a);
    expect(r.connection(slot)).toEqual({ generation: 1, commands: 2, dataInBytes: 4096, dataOutBytes: 1024, rejects: 1, digestErrors: 2, inUse: true });
    w.closeConnection(a);
    expect(r.connection(slot)!.inUse).toBe(false);
    const b = w.openConnection();
    expect(b).toBe(a); // the slot freed last is reused first
    expect(r.connection(slot)).toEqual({ generation: 2, commands: 0, dataInBytes: 0, dataOutBytes: 0, rejects: 0, digestErrors: 0, inUse: true });
    expect(r.field(SessionField.CONNECTIONS_ACCEPTED)).toBe(2);
    expect(r.field(SessionField.HEADER_DIGEST_ERRORS)).toBe(1);
    expect(r.field(SessionField.DATA_DIGEST_ERRORS)).toBe(1);
    expect(r.rejects()).toEqual([{ code: 4, count: 1 }]);
  });

  it('counts in the scratch slot when every slot is taken, never in another connection\'s', () => {
    const w = new SessionCounters();
    const r = new SessionCountersView(w.sab);
    const bases: number[] = [];
    for (let i = 1; i < MAX_CONNECTION_SLOTS; i++) bases.push(w.openConnection());
    const overflow = w.openConnection();
    expect(SessionCounters.slotOf(overflow)).toBe(0);
    w.reject(overflow, 0x09);
    for (const b of bases) expect(r.connection(SessionCounters.slotOf(b))!.rejects).toBe(0);
    expect(r.connection(0)).toBeUndefined();
    w.closeConnection(overflow); // nothing to free
    w.closeConnection(bases[0]!);
    expect(SessionCounters.slotOf(w.openConnection())).toBe(SessionCounters.slotOf(bases[0]!));
  });

  it('maps Login Response statuses to reasons (RFC 7143 11.13.5)', () => {
    expect(LOGIN_FAILURE_REASONS[loginFailureIndex(0x02, 0x01)]).toBe('authentication-failed');
    expect(LOGIN_FAILURE_REASONS[loginFailureIndex(0x02, 0x03)]).toBe('not-found');
    expect(LOGIN_FAILURE_REASONS[loginFailureIndex(0x02, 0x0a)]).toBe('session-does-not-exist');
    expect(LOGIN_FAILURE_REASONS[loginFailureIndex(0x03, 0x02)]).toBe('out-of-resources');
    expect(LOGIN_FAILURE_REASONS[loginFailureIndex(0x01, 0x01)]).toBe('other');
    const w = new SessionCounters();
    w.loginFailed(0x02, 0x02);
    w.loginTimedOut();
    w.loginOk();
    const r = new SessionCountersView(w.sab);
    expect(r.loginFailures().filter((f) => f.count > 0)).toEqual([
      { reason: 'authorization-failed', count: 1 },
      { reason: 'timeout', count: 1 },
    ]);
    expect(r.field(SessionField.LOGINS_OK)).toBe(1);
  });

  it('is read by another thread through the same SharedArrayBuffer', async () => {
    const w = new SessionCounters();
    const base = w.openConnection();
    for (let i = 0; i < 1000; i++) w.commandDone(base, { read: true, write: false, edtl: 512, dataInLength: 512, received: 0 });
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      const f = new Float64Array(workerData.sab);
      parentPort.postMessage([f[workerData.base + 1], f[workerData.base + 2]]);
    `;
    const worker = new Worker(code, { eval: true, workerData: { sab: w.sab, base } });
    const seen = await new Promise<number[]>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    expect(seen).toEqual([1000, 512_000]);
  });
});
