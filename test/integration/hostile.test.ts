/**
 * Hostile input against the live target: oversized and truncated PDUs, garbage instead
 * of a login, logins that never finish, connection floods, nonsense in full feature
 * phase, and a fast-check property that throws random and mutated PDUs at a logged-in
 * connection. After each, a fresh initiator must still log in and read, and the
 * target's process must still be running.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { cleanup, startTarget, type StartedTarget } from '../helpers/target.ts';
import { run } from '../helpers/run.ts';
import {
  Initiator,
  Opcode,
  RESERVED_TAG,
  Status,
  assertServes,
  connectAndLogin,
  buildText,
  dataOutBhs,
  loginBhs,
  loginStatus,
  nopOutBhs,
  read10,
  rejectReason,
  isidSequence,
  scsiCommandBhs,
  setDsl,
  write10,
  type LoginOptions,
} from '../helpers/initiator.ts';
import { u32 } from '../../src/shared/iscsi/pdu.ts';

const INITIATOR = 'iqn.2026-11.io.spindle:hostile-test';
let t: StartedTarget;

beforeAll(async () => {
  t = await startTarget({
    iqn: 'iqn.2026-11.io.spindle:hostile',
    yaml: ({ port, iqn }) => `
clusterId: test
logging: { level: info }
workers: { session: 2, lun: 1 }
iscsi: { loginTimeoutSec: 2 }
devices:
  - name: ram0
    ram: { size: 16MiB }
targets:
  - iqn: ${iqn}
    portals: ['127.0.0.1:${port}']
    luns: { 0: ram0 }
`,
  });
});

afterAll(async () => {
  const code = await t?.stop('SIGTERM');
  cleanup(t);
  expect(code).toBe(0);
});

afterEach(async () => {
  // Whatever a test threw at it, the target must still serve a fresh initiator.
  expect(t.proc.exitCode, t.output().slice(-2000)).toBeNull();
  await assertServes(t.port, t.iqn);
});

/** A distinct ISID per connection, so no two test sessions share an I_T nexus. */
const nextIsid = isidSequence(0x77, 0x66);

function open(o: LoginOptions = {}): Promise<Initiator> {
  return connectAndLogin(t.port, t.iqn, { initiatorName: INITIATOR, isid: nextIsid(), ...o });
}

/** Resident set size of the target process (all its threads), in bytes. */
function rss(): number {
  const status = readFileSync(`/proc/${t.proc.pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('oversized and malformed segments', () => {
  it('a 16 MiB DataSegmentLength in full feature phase is refused without buffering it', async () => {
    const before = rss();
    for (let i = 0; i < 8; i++) {
      const ini = await open();
      const bhs = nopOutBhs({ immediate: true, itt: 0x100 + i, cmdSN: ini.cmdSN, expStatSN: ini.expStatSN });
      setDsl(bhs, 0xffffff);
      ini.sendRaw(bhs);
      // Start streaming the promised bytes: the target must not wait for (or keep) them.
      ini.sendRaw(Buffer.alloc(1024 * 1024, 0x41));
      const seen = await ini.expectClose(3000);
      // RFC 7143 11.2.1.5 / 13.12: beyond MaxRecvDataSegmentLength is a protocol error.
      for (const p of seen) expect(p.opcode).toBe(Opcode.REJECT);
      if (seen[0]) expect(rejectReason(seen[0])).toBe(0x04);
    }
    expect(rss() - before).toBeLessThan(64 * 1024 * 1024);
  });

  it('a 16 MiB DataSegmentLength on the first Login Request is refused and the connection closed', async () => {
    const ini = await Initiator.connect(t.port);
    const bhs = loginBhs({ csg: 0, nsg: 1, transit: true, itt: 1, isid: nextIsid() });
    setDsl(bhs, 0xffffff);
    ini.sendRaw(bhs);
    ini.sendRaw(Buffer.alloc(256 * 1024, 0x41));
    const seen = await ini.expectClose(3000);
    expect(seen.length).toBeLessThanOrEqual(1);
  });

  it('a 64 KiB text key in login (C-bit fragments of 8 KiB) gets a login reject, not a crash', async () => {
    const ini = await Initiator.connect(t.port);
    const text = buildText([
      ['InitiatorName', INITIATOR],
      ['TargetName', t.iqn],
      ['AuthMethod', 'None'],
      ['X-com.example.Big', 'v'.repeat(64 * 1024)],
    ]);
    const isid = nextIsid();
    let last = null;
    for (let off = 0; off < text.length; off += 8192) {
      const end = Math.min(text.length, off + 8192);
      const cont = end < text.length;
      ini.send(loginBhs({ csg: 0, nsg: 1, transit: !cont, cont, itt: 1, isid }), text.subarray(off, end));
      last = await ini.nextPdu(3000).catch(() => null);
      if (last === null || loginStatus(last).statusClass !== 0) break;
    }
    expect(last).not.toBeNull();
    expect(last!.opcode).toBe(Opcode.LOGIN_RESPONSE);
    // RFC 7143 11.13.5: an initiator error (class 2).
    expect(loginStatus(last!).statusClass).toBe(0x02);
    await ini.expectClose(3000);
  });

  it('a 64 KiB key in a single Login PDU (beyond 8192) is refused and the connection closed', async () => {
    const ini = await Initiator.connect(t.port);
    const text = buildText([
      ['InitiatorName', INITIATOR],
      ['TargetName', t.iqn],
      ['X-com.example.Big', 'v'.repeat(64 * 1024)],
    ]);
    ini.send(loginBhs({ csg: 0, nsg: 1, transit: true, itt: 1, isid: nextIsid() }), text);
    await ini.expectClose(3000);
  });

  it('TotalAHSLength 255 (1020 bytes of AHS) is consumed and the stream stays in sync', async () => {
    const ini = await open();
    const itt = ini.allocItt();
    ini.send(
      nopOutBhs({ immediate: true, itt, totalAhsWords: 255, cmdSN: ini.cmdSN, expStatSN: ini.expStatSN }),
      Buffer.from('after-ahs'),
      {
        ahs: randomBytes(1020),
      },
    );
    // A Reject or the echo, but then the next PDU must be understood.
    const first = await ini.nextPdu(3000);
    expect([Opcode.NOP_IN, Opcode.REJECT]).toContain(first.opcode);
    const echo = await ini.ping(Buffer.from('in sync'));
    expect(echo.data.toString()).toBe('in sync');
    ini.close();
  });

  it('TotalAHSLength 255 on a SCSI Command with a header digest stays in sync', async () => {
    const ini = await open({ keys: [['HeaderDigest', 'CRC32C']] });
    const ahs = Buffer.alloc(1020);
    ini.send(
      scsiCommandBhs({
        read: true,
        itt: ini.allocItt(),
        edtl: 512,
        totalAhsWords: 255,
        cmdSN: ini.takeCmdSN(),
        expStatSN: ini.expStatSN,
        cdb: read10(0, 1),
      }),
      Buffer.alloc(0),
      { ahs },
    );
    const first = await ini.nextPdu(3000);
    expect([Opcode.DATA_IN, Opcode.SCSI_RESPONSE, Opcode.REJECT]).toContain(first.opcode);
    const echo = await ini.ping(Buffer.from('in sync'));
    expect(echo.data.toString()).toBe('in sync');
    ini.close();
  });
});

describe('garbage and abandoned logins', () => {
  it('random bytes instead of a login: the target closes the connection (within the login timeout)', async () => {
    for (let i = 0; i < 5; i++) {
      const ini = await Initiator.connect(t.port);
      ini.sendRaw(randomBytes(4096));
      await ini.expectClose(5000);
    }
  });

  it('a login that never finishes is closed after loginTimeoutSec (2 s)', async () => {
    const ini = await Initiator.connect(t.port);
    const started = Date.now();
    const p = await ini.loginStep(
      { csg: 0, nsg: 1, transit: false, itt: 1, isid: nextIsid() },
      buildText([
        ['InitiatorName', INITIATOR],
        ['TargetName', t.iqn],
        ['AuthMethod', 'None'],
      ]),
    );
    expect(loginStatus(p).statusClass).toBe(0);
    await ini.expectClose(5000);
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(1500);
    expect(elapsed).toBeLessThan(4500);
  });

  it('a connection that sends nothing at all is closed after the login timeout', async () => {
    const ini = await Initiator.connect(t.port);
    const started = Date.now();
    await ini.expectClose(5000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
  });

  it('a PDU cut in half, then the socket closed, in login and in full feature phase', async () => {
    const a = await Initiator.connect(t.port);
    const login = a.frame(
      loginBhs({ csg: 0, nsg: 1, transit: true, itt: 1, isid: nextIsid() }),
      buildText([['InitiatorName', INITIATOR]]),
    );
    a.sendRaw(login.subarray(0, 30));
    await sleep(20);
    a.close();
    const b = await open();
    const cmd = b.frame(
      scsiCommandBhs({
        write: true,
        itt: b.allocItt(),
        edtl: 8192,
        cmdSN: b.takeCmdSN(),
        expStatSN: b.expStatSN,
        cdb: write10(0, 16),
      }),
      Buffer.alloc(8192, 0x33),
    );
    b.sendRaw(cmd.subarray(0, 48 + 4000));
    await sleep(50);
    b.close();
    const c = await open();
    c.sendRaw(
      c.frame(nopOutBhs({ immediate: true, itt: 1, cmdSN: c.cmdSN }), Buffer.alloc(100)).subarray(0, 20),
    );
    await sleep(20);
    c.socket.end();
    expect(await c.waitClosed(3000)).toBe(true);
  });

  it('300 connections opened and dropped (some mid-login) leave no leaked slots behind', async () => {
    // Paced below the portal's accept rate limit so every connection is really accepted.
    const total = 300;
    const batch = 15;
    for (let i = 0; i < total; i += batch) {
      const socks = await Promise.all(
        Array.from(
          { length: batch },
          () =>
            new Promise<net.Socket>((resolve) => {
              const s = net.connect({ port: t.port, host: '127.0.0.1' }, () => resolve(s));
              s.on('error', () => resolve(s));
            }),
        ),
      );
      socks.forEach((s, j) => {
        if (j % 3 === 1) s.write(loginBhs({ csg: 0, nsg: 1, itt: 1 }).subarray(0, 20));
        if (j % 3 === 2) s.end();
        else s.destroy();
      });
      await sleep(110);
    }
    // Every one of them must have been released: more than maxConnectionsPerPortal (256)
    // were opened in total, so a leak would make the next logins fail.
    await sleep(300);
    for (let i = 0; i < 3; i++) await assertServes(t.port, t.iqn);
  });
});

describe('nonsense in full feature phase', () => {
  it('a Data-Out for a task that does not exist is discarded and the connection stays usable', async () => {
    const ini = await open();
    ini.send(dataOutBhs({ itt: 0xdead, ttt: 0x1234, bufferOffset: 0, dataSN: 0 }), Buffer.alloc(4096, 1));
    ini.send(
      dataOutBhs({ itt: 0xbeef, ttt: RESERVED_TAG, bufferOffset: 1 << 30, dataSN: 7 }),
      Buffer.alloc(512, 1),
    );
    const echo = await ini.ping(Buffer.from('alive'));
    expect(echo.data.toString()).toBe('alive');
    ini.close();
  });

  it('a SCSI Command with EDTL 0xFFFFFFFF is answered (no allocation of 4 GiB, no crash)', async () => {
    const ini = await open();
    const r = await ini.scsi(read10(0, 1), { read: true, edtl: 0xffffffff });
    expect(r.itt).toBeGreaterThan(0);
    expect([Status.GOOD, Status.CHECK_CONDITION]).toContain(r.status);
    const w = await ini
      .scsi(write10(0, 1), {
        write: true,
        edtl: 0xffffffff,
        data: Buffer.alloc(512),
        immediate: true,
        unsolicited: false,
      })
      .catch((e: Error) => e);
    // Either a SCSI response or a Reject; the session continues.
    expect(w).toBeDefined();
    const echo = await ini.ping(Buffer.from('alive'));
    expect(echo.data.toString()).toBe('alive');
    ini.close();
  });

  it(
    'Data-Out PDUs that overlap (same offset twice) must not complete the WRITE with GOOD (RFC 7143 13.18, DataPDUInOrder=Yes)',
    async () => {
      const ini = await open({
        keys: [
          ['InitialR2T', 'Yes'],
          ['ImmediateData', 'No'],
        ],
      });
      // An earlier write leaves its bytes in the session worker's slab.
      const earlier = Buffer.alloc(1024);
      earlier.write('EARLIER-WRITE-DATA.'.repeat(60), 'latin1');
      expect((await ini.scsi(write10(9000, 2), { write: true, edtl: 1024, data: earlier })).status).toBe(
        Status.GOOD,
      );
      const itt = ini.allocItt();
      ini.send(
        scsiCommandBhs({
          write: true,
          itt,
          edtl: 1024,
          cmdSN: ini.takeCmdSN(),
          expStatSN: ini.expStatSN,
          cdb: write10(500, 2),
        }),
      );
      const r2t = await ini.nextPdu();
      expect(r2t.opcode).toBe(Opcode.R2T);
      // Block 0 twice; block 1 is never sent. Counting bytes alone sees 1024 "received".
      ini.send(
        dataOutBhs({ final: false, itt, ttt: r2t.ttt, bufferOffset: 0, dataSN: 0 }),
        Buffer.alloc(512, 0x11),
      );
      ini.send(
        dataOutBhs({ final: true, itt, ttt: r2t.ttt, bufferOffset: 0, dataSN: 1 }),
        Buffer.alloc(512, 0x22),
      );
      const p = await ini.maybePdu(1000);
      ini.close();
      if (p !== null && p.itt === itt && (p.opcode === Opcode.SCSI_RESPONSE || p.opcode === Opcode.DATA_IN)) {
        expect(p.bhs[3], 'WRITE with a hole in its data completed GOOD').not.toBe(Status.GOOD);
      }
      // Whatever happened, the hole must not have been filled with stale slab bytes
      // (another command's data: with a slab per session worker, possibly another session's).
      const check = await open();
      const r = await check.scsi(read10(501, 1), { read: true, edtl: 512 });
      check.close();
      expect(r.data.toString('latin1')).not.toContain('EARLIER-WRITE-DATA');
    },
  );

  it('a flood of pipelined commands on one connection with a slow reader does not kill the target', async () => {
    const ini = await open();
    ini.socket.pause();
    const parts: Buffer[] = [];
    for (let i = 0; i < 2000; i++) {
      parts.push(
        ini.frame(
          scsiCommandBhs({
            read: true,
            itt: i + 1,
            edtl: 65536,
            cmdSN: ini.takeCmdSN(),
            cdb: read10(0, 128),
          }),
        ),
      );
    }
    ini.sendRaw(Buffer.concat(parts));
    await sleep(500);
    ini.close();
  });

  it('iscsi-inq (libiscsi) still works after the abuse', async () => {
    const r = await run('iscsi-inq', [t.url(0)], 15_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Vendor:SPINDLE');
  });
});

describe('property: random and mutated PDUs after a valid login', () => {
  /** Valid PDUs to mutate: what a session normally sends. */
  function seedPdus(ini: Initiator): Buffer[] {
    return [
      ini.frame(scsiCommandBhs({ read: true, itt: 11, edtl: 4096, cmdSN: ini.cmdSN, cdb: read10(0, 8) })),
      ini.frame(
        scsiCommandBhs({ write: true, itt: 12, edtl: 1024, cmdSN: ini.cmdSN + 1, cdb: write10(0, 2) }),
        Buffer.alloc(1024, 7),
      ),
      ini.frame(nopOutBhs({ immediate: true, itt: 13, cmdSN: ini.cmdSN }), Buffer.from('hello')),
      ini.frame(dataOutBhs({ itt: 12, ttt: 1, bufferOffset: 0 }), Buffer.alloc(512)),
      ini.frame(
        loginBhs({ csg: 1, nsg: 3, transit: true, itt: 14 }),
        buildText([['InitiatorName', INITIATOR]]),
      ),
    ];
  }

  const mutation = fc.record({
    seed: fc.nat(4),
    flips: fc.array(fc.record({ at: fc.nat(200), value: fc.integer({ min: 0, max: 255 }) }), {
      maxLength: 8,
    }),
    truncate: fc.option(fc.nat(200), { nil: undefined }),
  });
  const action = fc.oneof(
    { weight: 3, arbitrary: mutation.map((m) => ({ kind: 'mutate' as const, ...m })) },
    {
      weight: 1,
      arbitrary: fc
        .uint8Array({ minLength: 1, maxLength: 300 })
        .map((bytes) => ({ kind: 'random' as const, bytes })),
    },
    {
      weight: 1,
      arbitrary: fc
        .record({
          op: fc.integer({ min: 0, max: 63 }),
          flags: fc.integer({ min: 0, max: 255 }),
          dsl: fc.nat(600),
          ahs: fc.nat(3),
          tail: fc.uint8Array({ minLength: 40, maxLength: 40 }),
        })
        .map((h) => ({ kind: 'header' as const, ...h })),
    },
  );

  it('the target survives and keeps serving', async () => {
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(action, { minLength: 1, maxLength: 12 }),
        fc.boolean(),
        async (actions, digests) => {
          runs++;
          const ini = await open(
            digests
              ? {
                  keys: [
                    ['HeaderDigest', 'CRC32C'],
                    ['DataDigest', 'CRC32C'],
                  ],
                }
              : {},
          );
          const seeds = seedPdus(ini);
          for (const a of actions) {
            let bytes: Buffer;
            if (a.kind === 'mutate') {
              bytes = Buffer.from(seeds[a.seed]!);
              for (const f of a.flips) if (f.at < bytes.length) bytes[f.at] = f.value;
              if (a.truncate !== undefined) bytes = bytes.subarray(0, Math.min(bytes.length, a.truncate));
            } else if (a.kind === 'random') {
              bytes = Buffer.from(a.bytes);
            } else {
              const bhs = Buffer.alloc(48);
              bhs[0] = a.op;
              bhs[1] = a.flags;
              bhs[4] = a.ahs;
              Buffer.from(a.tail).copy(bhs, 8);
              bytes = ini.frame(bhs, Buffer.alloc(a.dsl, 0x5a), { ahs: Buffer.alloc(a.ahs * 4) });
            }
            ini.sendRaw(bytes);
          }
          // Drain whatever comes back for a moment, then hang up.
          await ini.maybePdu(30);
          ini.close();
          if (runs % 10 === 0) await assertServes(t.port, t.iqn);
          expect(t.proc.exitCode).toBeNull();
        },
      ),
      { numRuns: 200, interruptAfterTimeLimit: 25_000 },
    );
    expect(t.proc.exitCode).toBeNull();
    expect(t.output()).not.toMatch(/"level":60/);
    const ini = await open();
    const r = await ini.scsi(read10(0, 8), { read: true, edtl: 4096 });
    expect(r.status).toBe(Status.GOOD);
    expect(u32(r.statusPdu.bhs, 16)).toBe(r.itt);
    ini.close();
  }, 60_000);
});
