/**
 * Nexus handles are recycled only after every LUN worker acknowledged the loss of the
 * previous session: more sessions than the table has slots, one after another, must
 * all log in and do I/O.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NEXUS_SLOTS } from '../../src/shared/ring/nexus-table.ts';
import { cleanup, startTarget, type StartedTarget } from '../helpers/target.ts';
import { Initiator, assertServes, connectAndLogin } from '../helpers/initiator.ts';

let t: StartedTarget;

beforeAll(async () => {
  t = await startTarget({
    yaml: ({ port, iqn }) => `
workers: { session: 1, lun: 2 }
iscsi: { maxConnectionsPerPortal: 64 }
devices: [{ name: a, ram: { size: 8MiB } }, { name: b, ram: { size: 8MiB } }]
targets:
  - iqn: ${iqn}
    portals: ['127.0.0.1:${port}']
    luns: { 0: a, 1: b }
`,
  });
});

afterAll(async () => {
  await t?.stop();
  cleanup(t);
});

describe('nexus lifecycle', () => {
  it(`serves ${NEXUS_SLOTS + 200} sessions in turn on one session worker (slots recycle)`, async () => {
    // Paced below the portal's accept rate limit (200/s sustained, burst 100): each
    // connection starts at least 6 ms after the previous one, never in catch-up bursts.
    let last = 0;
    for (let i = 0; i < NEXUS_SLOTS + 200; i++) {
      const wait = last + 6 - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      last = Date.now();
      await assertServes(t.port, t.iqn);
    }
    expect(t.proc.exitCode).toBeNull();
    expect(t.output()).not.toContain('nexus table full');
  }, 120_000);

  it('a second leading login with the same identity on the same session worker replaces the first (RFC 7143 6.3.5)', async () => {
    const isid = Uint8Array.from([0x80, 0, 0, 0, 0x42, 0x01]);
    const opts = { initiatorName: 'iqn.2026-11.io.spindle:reinstate', isid };
    const a = await connectAndLogin(t.port, t.iqn, opts);
    const b = await connectAndLogin(t.port, t.iqn, opts);
    try {
      expect(await a.waitClosed(3000)).toBe(true);
      const other = await connectAndLogin(t.port, t.iqn, { ...opts, isid: Uint8Array.from([0x80, 0, 0, 0, 0x42, 0x02]) });
      // A different ISID is a different session: both stay.
      expect(await b.waitClosed(300)).toBe(false);
      other.close();
    } finally {
      a.close();
      b.close();
    }
  });

  it('a login with the TSIH of a live session reinstates its connection (RFC 7143 6.3.4)', async () => {
    const isid = Uint8Array.from([0x80, 0, 0, 0, 0x43, 0x01]);
    const opts = { initiatorName: 'iqn.2026-11.io.spindle:conn-reinstate', isid };
    const a = await connectAndLogin(t.port, t.iqn, opts);
    const b = await connectAndLogin(t.port, t.iqn, { ...opts, tsih: a.tsih });
    try {
      expect(b.tsih).toBe(a.tsih); // the same session continues
      expect(await a.waitClosed(3000)).toBe(true);
      await assertServes(t.port, t.iqn);
      // A TSIH no live session has: "session does not exist" (RFC 7143 11.13.5).
      const c = await Initiator.connect(t.port);
      const r = await c.login({ ...opts, targetName: t.iqn, isid: Uint8Array.from([0x80, 0, 0, 0, 0x43, 0x02]), tsih: 0x7777 });
      expect([r.statusClass, r.statusDetail]).toEqual([0x02, 0x0a]);
      c.close();
    } finally {
      a.close();
      b.close();
    }
  });
});

