/**
 * Connection reinstatement across session workers (RFC 7143 6.3.4): the portal places
 * each connection on the least-loaded session worker before reading anything, so a login
 * naming a live session by its TSIH often lands on another worker than the session. The
 * session then moves to the new connection's worker (its TSIH with it); the old
 * connection is closed. With two session workers and nothing else connected, a second
 * connection always lands on the other worker than the first (placement: least loaded,
 * lowest index on ties), and the target's log says which worker ran each login.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { cleanup, ramDiskYaml, startTarget, type StartedTarget } from '../helpers/target.ts';
import {
  Initiator,
  Opcode,
  Status,
  TEST_UNIT_READY,
  connectAndLogin,
  isUnitAttention,
  read10,
  scsiCommandBhs,
  write10,
  type ScsiResult,
} from '../helpers/initiator.ts';

let t: StartedTarget;

beforeAll(async () => {
  t = await startTarget({
    yaml: ramDiskYaml(`
workers: { session: 2, lun: 1 }
iscsi: { maxConnectionsPerPortal: 64 }
`),
  });
});

afterAll(async () => {
  await t?.stop();
  cleanup(t);
});

interface LogLine {
  msg: string;
  worker?: number;
  tsih?: number;
  initiator?: string;
  from?: number;
  statusDetail?: number;
}

function logLines(): LogLine[] {
  return t
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

/** The session worker that logged the newest 'session logged in' for this initiator. */
function workerOf(initiator: string, tsih: number): number | undefined {
  const ls = logLines().filter(
    (l) => l.msg === 'session logged in' && l.initiator === initiator && l.tsih === tsih,
  );
  return ls.at(-1)?.worker;
}

/** Wait until the portal has seen every earlier connection close (placement starts from 0, 0). */
async function idle(...inis: Initiator[]): Promise<void> {
  for (const i of inis) {
    i.close();
    await i.waitClosed(3000);
  }
  await new Promise((r) => setTimeout(r, 200));
}

/**
 * Run a command as an initiator does after recovery: again while it meets a UNIT
 * ATTENTION. The old connection's nexus loss travels on its own worker's ring, so the LU
 * may see it after the continued session's first commands and then reports I_T NEXUS
 * LOSS OCCURRED once more (ua/unit-attention.ts, unitAttentionNexusLost).
 */
async function settled(run: () => Promise<ScsiResult>): Promise<ScsiResult> {
  let r = await run();
  for (let i = 0; i < 8 && isUnitAttention(r); i++) r = await run();
  return r;
}

async function ready(ini: Initiator): Promise<void> {
  const r = await ini.scsi(TEST_UNIT_READY, { edtl: 0 });
  expect(r.status).toBe(Status.GOOD);
}

describe('connection reinstatement across session workers (RFC 7143 6.3.4)', () => {
  it('a login with the TSIH of a session on the other worker continues it there; the old connection closes', async () => {
    const name = 'iqn.2026-11.io.spindle:reinstate-x';
    const isid = Uint8Array.from([0x80, 0, 0, 0x51, 0, 1]);
    const a = await connectAndLogin(t.port, t.iqn, { initiatorName: name, isid });
    await ready(a);
    const data = randomBytes(8192);
    expect((await a.scsi(write10(10, 16), { write: true, edtl: data.length, data })).status).toBe(
      Status.GOOD,
    );
    const b = await Initiator.connect(t.port);
    try {
      const r = await b.login({ initiatorName: name, targetName: t.iqn, isid, tsih: a.tsih });
      expect(r.ok, `login status ${r.statusClass}/${r.statusDetail}`).toBe(true);
      expect(r.tsih).toBe(a.tsih); // the same session continues
      expect(await a.waitClosed(3000)).toBe(true);
      const workers = logLines()
        .filter((l) => l.msg === 'session logged in' && l.initiator === name)
        .map((l) => l.worker);
      expect(workers).toHaveLength(2);
      expect(workers[0]).not.toBe(workers[1]); // it did cross workers
      expect(
        logLines().some(
          (l) => l.msg === 'connection reinstatement: session moves to this worker' && l.tsih === a.tsih,
        ),
      ).toBe(true);
      // The continued session serves I/O.
      const back = await settled(() => b.scsi(read10(10, 16), { read: true, edtl: data.length }));
      expect(back.status).toBe(Status.GOOD);
      expect(back.data.equals(data)).toBe(true);

      // And back again: with the first connection gone, the next one lands on the first worker.
      await idle(a);
      const c = await Initiator.connect(t.port);
      try {
        const r2 = await c.login({ initiatorName: name, targetName: t.iqn, isid, tsih: a.tsih });
        expect(r2.ok, `login status ${r2.statusClass}/${r2.statusDetail}`).toBe(true);
        expect(r2.tsih).toBe(a.tsih);
        expect(await b.waitClosed(3000)).toBe(true);
        const all = logLines()
          .filter((l) => l.msg === 'session logged in' && l.initiator === name)
          .map((l) => l.worker);
        expect(all).toHaveLength(3);
        expect(all[2]).toBe(all[0]);
        const again = await settled(() => c.scsi(read10(10, 16), { read: true, edtl: data.length }));
        expect(again.status).toBe(Status.GOOD);
        expect(again.data.equals(data)).toBe(true);
        // A clean logout frees the TSIH: a login naming it now finds no session.
        const lo = await c.logout();
        expect(lo.opcode).toBe(Opcode.LOGOUT_RESPONSE);
        expect(await c.waitClosed(3000)).toBe(true);
        await new Promise((r) => setTimeout(r, 100));
        const d = await Initiator.connect(t.port);
        const r3 = await d.login({ initiatorName: name, targetName: t.iqn, isid, tsih: a.tsih });
        expect([r3.statusClass, r3.statusDetail]).toEqual([0x02, 0x0a]);
        d.close();
      } finally {
        c.close();
      }
    } finally {
      a.close();
      b.close();
      await idle(a, b);
    }
  });

  it('a TSIH on the other worker with another identity is "session does not exist" and that session lives on', async () => {
    const name = 'iqn.2026-11.io.spindle:reinstate-victim';
    const isid = Uint8Array.from([0x80, 0, 0, 0x52, 0, 1]);
    const victim = await connectAndLogin(t.port, t.iqn, { initiatorName: name, isid });
    try {
      await ready(victim);
      for (const other of [
        { initiatorName: 'iqn.2026-11.io.spindle:intruder', isid },
        { initiatorName: name, isid: Uint8Array.from([0x80, 0, 0, 0x52, 0, 2]) },
      ]) {
        const x = await Initiator.connect(t.port);
        const r = await x.login({ ...other, targetName: t.iqn, tsih: victim.tsih });
        expect([r.statusClass, r.statusDetail]).toEqual([0x02, 0x0a]);
        expect(await x.waitClosed(3000)).toBe(true);
        await idle(x);
      }
      const failures = logLines().filter((l) => l.msg === 'login failed' && l.statusDetail === 0x0a);
      expect(failures.length).toBeGreaterThanOrEqual(2);
      expect(failures.at(-1)!.worker).not.toBe(workerOf(name, victim.tsih)); // the cross-worker path
      const echo = await victim.ping(Buffer.from('still here'));
      expect(echo.data.toString()).toBe('still here');
      expect((await settled(() => victim.scsi(TEST_UNIT_READY, { edtl: 0 }))).status).toBe(Status.GOOD);
    } finally {
      await idle(victim);
    }
  });

  it('an initiator with a live session of its own cannot take over another session by its TSIH', async () => {
    const victimName = 'iqn.2026-11.io.spindle:reinstate-victim2';
    const thiefName = 'iqn.2026-11.io.spindle:reinstate-thief';
    const isid = Uint8Array.from([0x80, 0, 0, 0x55, 0, 1]);
    const victim = await connectAndLogin(t.port, t.iqn, { initiatorName: victimName, isid }); // worker 0
    const own = await connectAndLogin(t.port, t.iqn, { initiatorName: thiefName, isid }); // worker 1
    const filler = await connectAndLogin(t.port, t.iqn, {
      initiatorName: thiefName,
      isid: Uint8Array.from([0x80, 0, 0, 0x55, 0, 9]),
    }); // worker 0
    const x = await Initiator.connect(t.port); // worker 1: the victim's session is elsewhere
    try {
      expect(workerOf(victimName, victim.tsih)).not.toBe(workerOf(thiefName, own.tsih));
      // The thief's identity is live (its own session, another TSIH): still no session
      // with this TSIH *and* this identity.
      const r = await x.login({ initiatorName: thiefName, targetName: t.iqn, isid, tsih: victim.tsih });
      expect([r.statusClass, r.statusDetail]).toEqual([0x02, 0x0a]);
      const failed = logLines()
        .filter((l) => l.msg === 'login failed' && l.statusDetail === 0x0a)
        .at(-1)!;
      expect(failed.worker).not.toBe(workerOf(victimName, victim.tsih));
      expect((await settled(() => victim.scsi(TEST_UNIT_READY, { edtl: 0 }))).status).toBe(Status.GOOD);
      expect((await victim.ping(Buffer.from('mine'))).data.toString()).toBe('mine');
      expect((await own.ping(Buffer.from('ours'))).data.toString()).toBe('ours');
      // The victim's TSIH is still its own: a correct reinstatement of it still works.
      const y = await Initiator.connect(t.port);
      const ok = await y.login({ initiatorName: victimName, targetName: t.iqn, isid, tsih: victim.tsih });
      expect(ok.ok).toBe(true);
      expect(await victim.waitClosed(3000)).toBe(true);
      y.close();
    } finally {
      await idle(victim, own, filler, x);
    }
  });

  it('the old connection may have a write waiting for data: it ends, the session goes on', async () => {
    const name = 'iqn.2026-11.io.spindle:reinstate-busy';
    const isid = Uint8Array.from([0x80, 0, 0, 0x53, 0, 1]);
    const a = await connectAndLogin(t.port, t.iqn, {
      initiatorName: name,
      isid,
      keys: [
        ['InitialR2T', 'Yes'],
        ['ImmediateData', 'No'],
      ],
    });
    const b = await Initiator.connect(t.port);
    try {
      await ready(a);
      const itt = a.allocItt();
      a.send(
        scsiCommandBhs({
          write: true,
          itt,
          edtl: 65536,
          cmdSN: a.takeCmdSN(),
          expStatSN: a.expStatSN,
          cdb: write10(300, 128),
        }),
      );
      const r2t = await a.nextPdu();
      expect(r2t.opcode).toBe(Opcode.R2T);
      const r = await b.login({ initiatorName: name, targetName: t.iqn, isid, tsih: a.tsih });
      expect(r.ok).toBe(true);
      expect(await a.waitClosed(3000)).toBe(true);
      const data = randomBytes(4096);
      expect((await settled(() => b.scsi(write10(300, 8), { write: true, edtl: 4096, data }))).status).toBe(
        Status.GOOD,
      );
    } finally {
      await idle(a, b);
    }
  });

  it('TSIHs stay unique across workers, also for sessions opened after one has moved', async () => {
    const inis: Initiator[] = [];
    try {
      for (let i = 0; i < 24; i++) {
        inis.push(
          await connectAndLogin(t.port, t.iqn, {
            initiatorName: 'iqn.2026-11.io.spindle:tsih-unique',
            isid: Uint8Array.from([0x80, 0, 0, 0x54, 0, i]),
          }),
        );
      }
      // Move one session to the other worker, then open more.
      const moved = inis[0]!;
      const m = await Initiator.connect(t.port);
      const r = await m.login({
        initiatorName: 'iqn.2026-11.io.spindle:tsih-unique',
        targetName: t.iqn,
        isid: Uint8Array.from([0x80, 0, 0, 0x54, 0, 0]),
        tsih: moved.tsih,
      });
      expect(r.ok).toBe(true);
      expect(await moved.waitClosed(3000)).toBe(true);
      inis.push(m);
      for (let i = 24; i < 48; i++) {
        inis.push(
          await connectAndLogin(t.port, t.iqn, {
            initiatorName: 'iqn.2026-11.io.spindle:tsih-unique',
            isid: Uint8Array.from([0x80, 0, 0, 0x54, 0, i]),
          }),
        );
      }
      const live = inis.filter((x) => !x.isClosed).map((x) => x.tsih);
      expect(live).toHaveLength(48);
      expect(new Set(live).size).toBe(48);
      const workers = new Set(
        logLines()
          .filter((l) => l.initiator === 'iqn.2026-11.io.spindle:tsih-unique')
          .map((l) => l.worker),
      );
      expect(workers.size).toBe(2);
    } finally {
      await idle(...inis);
    }
  });
});
