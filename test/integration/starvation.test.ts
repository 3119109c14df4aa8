/**
 * Hostile initiators cannot starve the others (issue 12): many sessions announcing large
 * writes and withholding the data hold at most their share of the session worker's slab,
 * so another initiator's reads on the same worker still get through at their normal
 * latency; the withheld writes end with INITIATOR RESPONSE TIMEOUT after dataOutTimeoutSec.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { performance } from 'node:perf_hooks';
import { rmSync } from 'node:fs';
import {
  type Initiator,
  Opcode,
  Status,
  connectAndLogin,
  isidSequence,
  read10,
  scsiCommandBhs,
  write10,
  type LoginOptions,
} from '../helpers/initiator.ts';
import { startTarget, type StartedTarget } from '../helpers/target.ts';

const MiB = 1024 * 1024;
const SOLICITED_ONLY: LoginOptions = {
  keys: [
    ['InitialR2T', 'Yes'],
    ['ImmediateData', 'No'],
  ],
};

let t: StartedTarget;
const nextIsid = isidSequence(0x5a, 0x17);

beforeAll(async () => {
  t = await startTarget({
    yaml: ({ port, iqn }) => `
logging: { level: info }
workers: { session: 1, lun: 1 }
iscsi: { maxTransferLength: 16MiB, maxPendingWriteBytes: 32MiB, dataOutTimeoutSec: 3, nopIntervalSec: 0 }
devices: [{ name: r, ram: { size: 64MiB } }]
targets:
  - iqn: ${iqn}
    portals: ['127.0.0.1:${port}']
    luns: { 0: r }
`,
  });
});

afterAll(async () => {
  await t?.stop();
  if (t !== undefined) rmSync(t.dir, { recursive: true, force: true });
});

/** p50 and max of `n` 64 KiB reads through `ini`, in ms. */
async function readLatency(ini: Initiator, n: number): Promise<{ p50: number; max: number }> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await ini.scsi(read10(i * 128, 128), { read: true, edtl: 64 * 1024 });
    expect(r.status).toBe(Status.GOOD);
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return { p50: ms[Math.floor(n / 2)]!, max: ms[n - 1]! };
}

describe('withheld write data', () => {
  it("ten sessions withholding 16 MiB writes do not stop another initiator's reads", async () => {
    const victim = await connectAndLogin(t.port, t.iqn, { initiatorName: 'iqn.2026-11.test:victim', isid: nextIsid() });
    const before = await readLatency(victim, 40);

    // Each attacker announces four 16 MiB writes and sends no data (the slab is 128 MiB).
    const attackers: Initiator[] = [];
    const statuses: number[] = [];
    for (let a = 0; a < 10; a++) {
      const ini = await connectAndLogin(t.port, t.iqn, { initiatorName: `iqn.2026-11.test:attacker${a}`, isid: nextIsid(), ...SOLICITED_ONLY });
      attackers.push(ini);
      for (let w = 0; w < 4; w++) {
        ini.send(scsiCommandBhs({ write: true, itt: ini.allocItt(), edtl: 16 * MiB, cmdSN: ini.takeCmdSN(), expStatSN: ini.expStatSN, cdb: write10(0, (16 * MiB) / 512) }));
      }
    }
    // Every announced write gets an R2T or, past the caps, TASK SET FULL.
    for (const ini of attackers) {
      for (let w = 0; w < 4; w++) {
        const p = await ini.nextPdu(5000);
        if (p.opcode === Opcode.SCSI_RESPONSE) statuses.push(p.bhs[3]!);
        else expect(p.opcode).toBe(Opcode.R2T);
      }
    }
    expect(statuses.length).toBeGreaterThan(0);
    expect(statuses.every((s) => s === Status.TASK_SET_FULL)).toBe(true);

    const during = await readLatency(victim, 40);
    // Reads still work; their latency stays in the same range (a loose bound: this is a
    // loaded 2-core machine, and the property is "not starved", not a benchmark).
    expect(during.p50).toBeLessThan(Math.max(20, before.p50 * 10));

    // The withheld writes end by themselves (dataOutTimeoutSec 3).
    const ended = await attackers[0]!.nextPdu(8000);
    expect(ended.opcode).toBe(Opcode.SCSI_RESPONSE);
    expect(ended.bhs[3]).toBe(Status.CHECK_CONDITION);
    for (const ini of attackers) ini.close();
    victim.close();
  });
});
