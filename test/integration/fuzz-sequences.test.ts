/**
 * Hostile input at scale (issue 12): property-based sequences of PDUs against a live
 * target, built from what sessions really send but at odd moments and with odd values:
 * commands in and out of the CmdSN window, writes whose data stops half way or comes with
 * the wrong Target Transfer Tag, task management (ABORT TASK, ABORT TASK SET, LOGICAL UNIT
 * RESET, CLEAR TASK SET) while commands and data are in flight, logout in the middle of a
 * write, NOP-Outs, raw garbage, abrupt disconnects; with and without digests. Afterwards
 * the target must be alive (a fresh session reads and writes), hold nothing (no
 * connection, task or slab block on any session worker, no command at any LU: SIGUSR2
 * stats), and its memory must not have grown without bound.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import {
  Status,
  connectAndLogin,
  dataOutBhs,
  isidSequence,
  logoutBhs,
  nopOutBhs,
  read10,
  scsiCommandBhs,
  tmfBhs,
  write10,
  type Initiator,
} from '../helpers/initiator.ts';
import { startTarget, type StartedTarget } from '../helpers/target.ts';

let t: StartedTarget;
const nextIsid = isidSequence(0xf0, 0x22);

beforeAll(async () => {
  t = await startTarget({
    yaml: ({ port, iqn, dir }) => `
logging: { level: info }
workers: { session: 2, lun: 2 }
iscsi: { dataOutTimeoutSec: 2, nopIntervalSec: 0 }
devices:
  - name: ram0
    ram: { size: 16MiB }
  - name: file1
    file: { path: ${dir}/file1.img, size: 16MiB }
targets:
  - iqn: ${iqn}
    portals: ['127.0.0.1:${port}']
    luns: { 0: ram0, 1: file1 }
`,
  });
});

afterAll(async () => {
  await t?.stop();
  if (t !== undefined) rmSync(t.dir, { recursive: true, force: true });
});

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? 0 : Number(m[1]);
}

interface WorkerStats {
  sessions: { connections: number; tasks: number; slabInUse: number }[];
  luns: { inflight: number }[];
}

/** Ask the target for its worker stats (SIGUSR2) and read the log line it writes. */
async function stats(): Promise<WorkerStats> {
  const before = t.output().length;
  t.proc.kill('SIGUSR2');
  const deadline = Date.now() + 5000;
  for (;;) {
    const line = t
      .output()
      .slice(before)
      .split('\n')
      .find((l) => l.includes('"msg":"worker stats"'));
    if (line !== undefined) return JSON.parse(line) as WorkerStats;
    if (Date.now() > deadline) throw new Error('no worker stats line');
    await new Promise((r) => setTimeout(r, 50));
  }
}

const step = fc.oneof(
  fc.record({ k: fc.constant('read' as const), lun: fc.nat(2), window: fc.integer({ min: -3, max: 300 }), blocks: fc.integer({ min: 0, max: 64 }) }),
  fc.record({ k: fc.constant('write' as const), lun: fc.nat(2), edtl: fc.integer({ min: 0, max: 512 * 1024 }), sent: fc.integer({ min: 0, max: 100 }), badTtt: fc.boolean() }),
  fc.record({ k: fc.constant('tmf' as const), fn: fc.constantFrom(1, 2, 4, 5), lun: fc.nat(2), rttBack: fc.nat(4) }),
  fc.record({ k: fc.constant('nop' as const), immediate: fc.boolean() }),
  fc.record({ k: fc.constant('logout' as const), reason: fc.nat(2) }),
  fc.record({ k: fc.constant('garbage' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 96 }) }),
  fc.record({ k: fc.constant('pause' as const), ms: fc.integer({ min: 0, max: 30 }) }),
);
type Step = typeof step extends fc.Arbitrary<infer S> ? S : never;

/** Send one step's PDUs; never waits for answers (the reader drains them). */
function play(ini: Initiator, s: Step, itts: number[]): Promise<void> | void {
  switch (s.k) {
    case 'read': {
      const itt = ini.allocItt();
      itts.push(itt);
      const cmdSN = s.window >= 0 && s.window < 128 ? ini.takeCmdSN() : (ini.cmdSN + s.window) >>> 0;
      ini.send(scsiCommandBhs({ read: true, lun: s.lun, itt, edtl: s.blocks * 512, cmdSN, expStatSN: ini.expStatSN, cdb: read10(s.lun * 100, s.blocks) }));
      return;
    }
    case 'write': {
      const itt = ini.allocItt();
      itts.push(itt);
      const blocks = Math.ceil(s.edtl / 512);
      const imm = Math.min(s.edtl, 8192, Math.floor((s.edtl * s.sent) / 100));
      ini.send(
        scsiCommandBhs({ write: true, final: imm >= s.edtl, lun: s.lun, itt, edtl: s.edtl, cmdSN: ini.takeCmdSN(), expStatSN: ini.expStatSN, cdb: write10(s.lun * 100, blocks) }),
        randomBytes(imm),
      );
      const more = Math.floor((s.edtl * s.sent) / 100) - imm;
      if (more > 0) ini.send(dataOutBhs({ itt, lun: s.lun, ttt: s.badTtt ? 0x1234 : 0xffffffff, bufferOffset: imm, final: true }), randomBytes(Math.min(more, 8192)));
      return;
    }
    case 'tmf':
      ini.send(tmfBhs({ fn: s.fn, lun: s.lun, immediate: true, itt: ini.allocItt(), rtt: itts[itts.length - 1 - s.rttBack] ?? 0xffffffff, cmdSN: ini.cmdSN, expStatSN: ini.expStatSN }));
      return;
    case 'nop':
      ini.send(nopOutBhs({ immediate: s.immediate, itt: ini.allocItt(), cmdSN: s.immediate ? ini.cmdSN : ini.takeCmdSN(), expStatSN: ini.expStatSN }));
      return;
    case 'logout':
      ini.send(logoutBhs({ reason: s.reason, immediate: true, itt: ini.allocItt(), cmdSN: ini.cmdSN, expStatSN: ini.expStatSN }));
      return;
    case 'garbage':
      ini.sendRaw(Buffer.from(s.bytes));
      return;
    case 'pause':
      return new Promise((r) => setTimeout(r, s.ms));
  }
}

describe('property: hostile PDU sequences against a live target', () => {
  it('leaves the target alive, holding nothing, with bounded memory', async () => {
    const rssBefore = rssKiB(t.proc.pid!);
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 25 }), fc.boolean(), fc.boolean(), async (steps, digests, abrupt) => {
        const ini = await connectAndLogin(t.port, t.iqn, {
          initiatorName: 'iqn.2026-11.test:fuzz',
          isid: nextIsid(),
          keys: [
            ['InitialR2T', 'No'],
            ['ImmediateData', 'Yes'],
            ...(digests
              ? ([
                  ['HeaderDigest', 'CRC32C'],
                  ['DataDigest', 'CRC32C'],
                ] as [string, string][])
              : []),
          ],
        });
        const itts: number[] = [];
        // Drain whatever the target answers, until it closes or we give up.
        const reader = (async () => {
          try {
            for (;;) await ini.nextPdu(400);
          } catch {
            // closed, timed out, or a PDU the test initiator cannot parse after garbage
          }
        })();
        for (const s of steps) await play(ini, s, itts);
        if (!abrupt) await new Promise((r) => setTimeout(r, 50));
        ini.close();
        await reader;
      }),
      { numRuns: 120, seed: 0x5eed, endOnFailure: true },
    );

    // Alive: a fresh session writes and reads back.
    const ok = await connectAndLogin(t.port, t.iqn, { initiatorName: 'iqn.2026-11.test:after', isid: nextIsid() });
    const data = randomBytes(8192);
    for (let i = 0; i < 4; i++) {
      const w = await ok.scsi(write10(1000, 16), { lun: 0, write: true, edtl: data.length, data });
      if (w.status === Status.GOOD) break;
    }
    const r = await ok.scsi(read10(1000, 16), { lun: 0, read: true, edtl: data.length });
    expect(r.status).toBe(Status.GOOD);
    expect(r.data.equals(data)).toBe(true);
    ok.close();

    // Nothing held once every connection is gone (connections close asynchronously).
    let s: WorkerStats | undefined;
    for (let i = 0; i < 40; i++) {
      s = await stats();
      if (s.sessions.every((w) => w.connections === 0 && w.tasks === 0 && w.slabInUse === 0) && s.luns.every((l) => l.inflight === 0)) break;
      await new Promise((res) => setTimeout(res, 250));
    }
    expect(s!.sessions.map((w) => [w.connections, w.tasks, w.slabInUse])).toEqual(s!.sessions.map(() => [0, 0, 0]));
    expect(s!.luns.map((l) => l.inflight)).toEqual(s!.luns.map(() => 0));
    // Memory: no unbounded growth (a generous bound: slabs are preallocated, so what grows is leaks).
    expect(rssKiB(t.proc.pid!) - rssBefore).toBeLessThan(256 * 1024);
  });
});
