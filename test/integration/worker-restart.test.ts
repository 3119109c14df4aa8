/**
 * Worker supervision (issue 12): a crashed or hung LUN or session worker is replaced
 * without stopping the node. The commands it held end with a retryable status
 * (06/29/04 DEVICE INTERNAL RESET for a lost LUN worker); a lost session worker's
 * connections drop and initiators log in again; RAM contents and reservations survive;
 * the other workers' sessions see no error. Faults are injected through the test-only
 * fault file (SPINDLE_TEST_FAULTS=1).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Status, connectAndLogin, isidSequence, read10, write10, type Initiator } from '../helpers/initiator.ts';
import { startTarget, type StartedTarget } from '../helpers/target.ts';
import { prinCdb, proutCdb, proutParams } from '../helpers/scsi-pr.ts';
import { TaskAttribute } from '../../src/shared/scsi/command.ts';

let t: StartedTarget;
let faults: string;
const nextIsid = isidSequence(0x7e, 0x01);

beforeAll(async () => {
  process.env['SPINDLE_TEST_FAULTS'] = '1';
  process.env['SPINDLE_HANG_TIMEOUT_MS'] = '1500';
  t = await startTarget({
    yaml: ({ port, iqn, dir }) => {
      faults = path.join(dir, 'faults');
      writeFileSync(faults, '');
      process.env['SPINDLE_FAULT_FILE'] = faults;
      return `
logging: { level: info }
stateDir: ${dir}/state
workers: { session: 2, lun: 2 }
devices:
  - name: ram0
    ram: { size: 16MiB }
  - name: file1
    file: { path: ${dir}/file1.img, size: 16MiB }
targets:
  - iqn: ${iqn}
    portals: ['127.0.0.1:${port}']
    luns: { 0: ram0, 1: file1 }
`;
    },
  });
});

afterAll(async () => {
  const code = await t?.stop();
  if (t !== undefined) rmSync(t.dir, { recursive: true, force: true });
  expect(code).toBe(0);
});

function inject(line: string): void {
  appendFileSync(faults, `${line}\n`);
}

async function waitForLog(pattern: RegExp, after: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(t.output().slice(after))) {
    if (Date.now() > deadline) throw new Error(`no log line ${pattern} in time:\n${t.output().slice(after)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A command retried while the target answers with a unit attention (what every initiator does). */
async function retried(run: () => ReturnType<Initiator['scsi']>): ReturnType<Initiator['scsi']> {
  for (let i = 0; ; i++) {
    const r = await run();
    if (r.status !== Status.CHECK_CONDITION || (r.sense[2]! & 0x0f) !== 0x06 || i > 8) return r;
  }
}

describe('a LUN worker crashes', () => {
  it('is replaced: RAM contents and reservations kept, the other LUN worker unaffected', async () => {
    const a = await connectAndLogin(t.port, t.iqn, { initiatorName: 'iqn.2026-11.test:a', isid: nextIsid() });
    const data = randomBytes(64 * 1024);
    expect((await a.scsi(write10(0, 128), { lun: 0, write: true, edtl: data.length, data })).status).toBe(Status.GOOD);
    const reg = await a.scsi(proutCdb(0x00, 0), { lun: 0, write: true, edtl: 24, data: proutParams({ saKey: 0xabcn }) });
    expect(reg.status).toBe(Status.GOOD);

    // Steady I/O on the other LUN worker (file1 on LUN worker 1) throughout.
    const b = await connectAndLogin(t.port, t.iqn, { initiatorName: 'iqn.2026-11.test:b', isid: nextIsid() });
    let stop = false;
    let bad = 0;
    let done = 0;
    const steady = (async () => {
      while (!stop) {
        const r = await b.scsi(read10(0, 8), { lun: 1, read: true, edtl: 4096 });
        if (r.status !== Status.GOOD) bad++;
        done++;
      }
    })();

    const mark = t.output().length;
    inject('crash lun 0');
    await waitForLog(/"worker":"lun-0"[^\n]*"msg":"worker replaced"/, mark);
    // RAM contents survived (after the unit attentions a restarted LU reports).
    const back = await retried(() => a.scsi(read10(0, 128), { lun: 0, read: true, edtl: data.length }));
    expect(back.status).toBe(Status.GOOD);
    expect(back.data.equals(data)).toBe(true);
    // The registration survived (READ KEYS).
    const keys = await retried(() => a.scsi(prinCdb(0x00), { lun: 0, read: true, edtl: 1024 }));
    expect(keys.status).toBe(Status.GOOD);
    expect(keys.data.readUInt32BE(4)).toBe(8);
    expect(keys.data.readBigUInt64BE(8)).toBe(0xabcn);
    stop = true;
    await steady;
    expect(done).toBeGreaterThan(10);
    expect(bad).toBe(0);
    a.close();
    b.close();
  });

  it('a hung LUN worker is noticed by its heartbeat, terminated and replaced; its commands end retryable', async () => {
    const a = await connectAndLogin(t.port, t.iqn, { initiatorName: 'iqn.2026-11.test:h', isid: nextIsid() });
    expect((await retried(() => a.scsi(read10(0, 8), { lun: 1, read: true, edtl: 4096 }))).status).toBe(Status.GOOD);
    const mark = t.output().length;
    inject('hang lun 1');
    await new Promise((r) => setTimeout(r, 200));
    // A command sent to the hung worker ends when it is replaced: 06/29/04, not silence.
    // ORDERED: never served inline by the session worker (a grant taken before the hang
    // would serve a SIMPLE READ of this buffered file there), so it reaches the hung worker.
    const during = await a.scsi(read10(0, 8), { lun: 1, read: true, edtl: 4096, timeoutMs: 15_000, attr: TaskAttribute.ORDERED });
    expect(during.status).toBe(Status.CHECK_CONDITION);
    expect([during.sense[2]! & 0x0f, during.sense[12], during.sense[13]]).toEqual([0x06, 0x29, 0x04]);
    await waitForLog(/"worker":"lun-1"[^\n]*"msg":"worker hung/, mark);
    const after = await retried(() => a.scsi(read10(0, 8), { lun: 1, read: true, edtl: 4096 }));
    expect(after.status).toBe(Status.GOOD);
    a.close();
  });
});

describe('a session worker crashes', () => {
  it("drops only its own connections; the other worker's session keeps working, and logins work again", async () => {
    // Two sessions: the portal places them on different session workers (least loaded).
    const x = await connectAndLogin(t.port, t.iqn, { initiatorName: 'iqn.2026-11.test:x', isid: nextIsid() });
    const y = await connectAndLogin(t.port, t.iqn, { initiatorName: 'iqn.2026-11.test:y', isid: nextIsid() });
    for (const ini of [x, y]) expect((await retried(() => ini.scsi(read10(0, 8), { lun: 0, read: true, edtl: 4096 }))).status).toBe(Status.GOOD);
    const mark = t.output().length;
    inject('crash session 0');
    await waitForLog(/"worker":"session-0"[^\n]*"msg":"worker replaced"/, mark);
    // Exactly one of the two sessions lost its connection; the other one is fine.
    const outcome = await Promise.all(
      [x, y].map(async (ini) => {
        try {
          const r = await ini.scsi(read10(0, 8), { lun: 0, read: true, edtl: 4096 });
          return r.status === Status.GOOD ? 'ok' : `status ${r.status}`;
        } catch {
          return 'dropped';
        }
      }),
    );
    expect(outcome.sort()).toEqual(['dropped', 'ok']);
    // New logins work (also on the replaced worker), and the survivor's nexus still runs.
    for (let i = 0; i < 3; i++) {
      const z = await connectAndLogin(t.port, t.iqn, { initiatorName: `iqn.2026-11.test:z${i}`, isid: nextIsid() });
      expect((await retried(() => z.scsi(read10(0, 8), { lun: 0, read: true, edtl: 4096 }))).status).toBe(Status.GOOD);
      z.close();
    }
    x.close();
    y.close();
    expect(readFileSync(faults, 'utf8')).toContain('crash session 0');
  });
});
