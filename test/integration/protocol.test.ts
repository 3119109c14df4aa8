/**
 * iSCSI protocol conformance of the live target (RFC 7143), driven PDU by PDU by the
 * test initiator in test/helpers/initiator.ts: the login key sets real initiators send,
 * digests, CHAP, discovery, the CmdSN window, R2T/Data-Out flows, residuals, NOP,
 * Logout, task management and Reject.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { cleanup, startTarget, type StartedTarget } from '../helpers/target.ts';
import {
  Initiator,
  Opcode,
  RESERVED_TAG,
  Status,
  TEST_UNIT_READY,
  assertServes,
  connectAndLogin,
  dataOutBhs,
  inquiry,
  loginBhs,
  loginStatus,
  buildText,
  nopOutBhs,
  parseText,
  parseTextPairs,
  rawBhs,
  read10,
  rejectReason,
  isidSequence,
  scsiCommandBhs,
  snackBhs,
  write10,
  type LoginOptions,
  type Pdu,
} from '../helpers/initiator.ts';
import { u32 } from '../../src/shared/iscsi/pdu.ts';

const CHAP_USER = 'chap-user-1';
const CHAP_SECRET = 'Spindle-Secret-7f3a91c2';
const INITIATOR = 'iqn.2026-11.io.spindle:protocol-test';

let t: StartedTarget;
let chapIqn: string;

beforeAll(async () => {
  t = await startTarget({
    iqn: 'iqn.2026-11.io.spindle:proto',
    yaml: ({ port, iqn, dir }) => `
clusterId: test
logging: { level: info }
workers: { session: 2, lun: 2 }
devices:
  - name: ram0
    ram: { size: 64MiB }
  - name: ram1
    ram: { size: 16MiB }
  - name: file0
    file: { path: ${dir}/file0.img, size: 16MiB }
  # Sparse until written: a SANITIZE writes all of it durably (hundreds of milliseconds).
  - name: file1
    file: { path: ${dir}/file1.img, size: 256MiB }
targets:
  - iqn: ${iqn}
    alias: proto
    portals: ['127.0.0.1:${port}']
    luns: { 0: ram0, 1: file0, 2: file1 }
  - iqn: ${iqn}-chap
    portals: ['127.0.0.1:${port}']
    luns: { 0: ram1 }
    auth: { chap: { user: ${CHAP_USER}, secret: '${CHAP_SECRET}' } }
`,
  });
  chapIqn = `${t.iqn}-chap`;
});

afterAll(async () => {
  const code = await t?.stop('SIGTERM');
  cleanup(t);
  expect(code).toBe(0);
});

/** A distinct ISID per connection, so no two test sessions share an I_T nexus. */
const nextIsid = isidSequence(0xab, 0xcd);

function open(o: LoginOptions = {}): Promise<Initiator> {
  return connectAndLogin(t.port, t.iqn, { initiatorName: INITIATOR, isid: nextIsid(), ...o });
}

/** Login keys that make every write wait for an R2T: no immediate, no unsolicited data. */
const SOLICITED_ONLY: LoginOptions = {
  keys: [
    ['InitialR2T', 'Yes'],
    ['ImmediateData', 'No'],
  ],
};

/** A SOLICITED_ONLY session with one 4 KiB WRITE(10) at LBA 0 sent and its R2T received. */
async function writeAwaitingData(): Promise<{ ini: Initiator; itt: number; cmdSN: number; r2t: Pdu }> {
  const ini = await open(SOLICITED_ONLY);
  const itt = ini.allocItt();
  const cmdSN = ini.takeCmdSN();
  ini.send(scsiCommandBhs({ write: true, itt, edtl: 4096, cmdSN, expStatSN: ini.expStatSN, cdb: write10(0, 8) }));
  const r2t = await ini.nextPdu();
  expect(r2t.opcode).toBe(Opcode.R2T);
  return { ini, itt, cmdSN, r2t };
}

/** Write `size` random bytes at `lba`, read them back, and check the PDU flow on the way. */
async function roundTrip(ini: Initiator, lba: number, size: number): Promise<void> {
  const n = ini.negotiated;
  const data = randomBytes(size);
  const w = await ini.scsi(write10(lba, size / 512), { write: true, edtl: size, data });
  expect(w.status).toBe(Status.GOOD);
  expect(w.overflow || w.underflow).toBe(false);
  let r2tSN = 0;
  for (const r2t of w.r2ts) {
    // RFC 7143 11.8: R2TSN counts from 0; DesiredDataTransferLength <= MaxBurstLength.
    expect(u32(r2t.bhs, 36)).toBe(r2tSN++);
    expect(r2t.ttt).not.toBe(RESERVED_TAG);
    const len = u32(r2t.bhs, 44);
    expect(len).toBeGreaterThan(0);
    expect(len).toBeLessThanOrEqual(n.maxBurstLength);
  }
  const r = await ini.scsi(read10(lba, size / 512), { read: true, edtl: size });
  expect(r.status).toBe(Status.GOOD);
  expect(r.data.equals(data)).toBe(true);
  // RFC 7143 11.7: Data-In PDUs respect our MaxRecvDataSegmentLength, DataSN counts from 0,
  // offsets are contiguous, and F closes each MaxBurstLength sequence.
  let offset = 0;
  let inBurst = 0;
  r.dataIns.forEach((d, i) => {
    expect(u32(d.bhs, 36)).toBe(i);
    expect(u32(d.bhs, 40)).toBe(offset);
    expect(d.data.length).toBeLessThanOrEqual(n.initiatorMaxRecvDataSegmentLength);
    offset += d.data.length;
    inBurst += d.data.length;
    expect(inBurst).toBeLessThanOrEqual(n.maxBurstLength);
    const f = (d.flags & 0x80) !== 0;
    if (f) inBurst = 0;
    if (i === r.dataIns.length - 1) expect(f).toBe(true);
  });
  expect(offset).toBe(size);
}

// Default key sets of real initiators (what each sends in the operational stage).
const OPEN_ISCSI_KEYS: Array<[string, string]> = [
  ['HeaderDigest', 'None'],
  ['DataDigest', 'None'],
  ['DefaultTime2Wait', '2'],
  ['DefaultTime2Retain', '0'],
  ['IFMarker', 'No'],
  ['OFMarker', 'No'],
  ['ErrorRecoveryLevel', '0'],
  ['InitialR2T', 'No'],
  ['ImmediateData', 'Yes'],
  ['MaxBurstLength', '16776192'],
  ['FirstBurstLength', '262144'],
  ['MaxOutstandingR2T', '1'],
  ['MaxConnections', '1'],
  ['DataPDUInOrder', 'Yes'],
  ['DataSequenceInOrder', 'Yes'],
  ['MaxRecvDataSegmentLength', '262144'],
];

const ESXI_KEYS: Array<[string, string]> = [
  ['HeaderDigest', 'None'],
  ['DataDigest', 'None'],
  ['ErrorRecoveryLevel', '0'],
  ['InitialR2T', 'No'],
  ['ImmediateData', 'Yes'],
  ['MaxBurstLength', '262144'],
  ['FirstBurstLength', '262144'],
  ['MaxOutstandingR2T', '1'],
  ['MaxConnections', '1'],
  ['DataPDUInOrder', 'Yes'],
  ['DataSequenceInOrder', 'Yes'],
  ['DefaultTime2Wait', '2'],
  ['DefaultTime2Retain', '0'],
  ['MaxRecvDataSegmentLength', '131072'],
];

const WINDOWS_KEYS: Array<[string, string]> = [
  ['HeaderDigest', 'None,CRC32C'],
  ['DataDigest', 'None,CRC32C'],
  ['ErrorRecoveryLevel', '2'],
  ['InitialR2T', 'No'],
  ['ImmediateData', 'Yes'],
  ['MaxBurstLength', '262144'],
  ['FirstBurstLength', '65536'],
  ['MaxOutstandingR2T', '1'],
  ['MaxConnections', '1'],
  ['DataPDUInOrder', 'Yes'],
  ['DataSequenceInOrder', 'Yes'],
  ['DefaultTime2Wait', '0'],
  ['DefaultTime2Retain', '0'],
  ['IFMarker', 'No'],
  ['OFMarker', 'No'],
  ['MaxRecvDataSegmentLength', '65536'],
];

describe('login with the key sets of real initiators', () => {
  it('Linux open-iscsi defaults: every key answered per RFC 7143 section 13, then I/O', async () => {
    const ini = await open({ keys: OPEN_ISCSI_KEYS, leadingKeys: [['InitiatorAlias', 'linux-host']] });
    const k = ini.negotiated;
    expect(k.headerDigest).toBe(false);
    expect(k.dataDigest).toBe(false);
    // 13.13 MaxBurstLength: min(16776192, target's 1 MiB); 13.14 FirstBurstLength: min.
    expect(k.maxBurstLength).toBe(1048576);
    expect(k.firstBurstLength).toBe(262144);
    expect(k.initialR2T).toBe(false); // 13.10: OR
    expect(k.immediateData).toBe(true); // 13.11: AND
    expect(k.maxOutstandingR2T).toBe(1);
    expect(k.targetMaxRecvDataSegmentLength).toBe(262144);
    ini.close();
  });

  it('Linux open-iscsi: the answers, declarations and a WRITE/READ round trip', async () => {
    const ini = await Initiator.connect(t.port);
    const r = await ini.login({
      initiatorName: INITIATOR,
      targetName: t.iqn,
      isid: nextIsid(),
      keys: OPEN_ISCSI_KEYS,
      leadingKeys: [['InitiatorAlias', 'linux-host']],
    });
    expect(r.ok).toBe(true);
    const k = r.targetKeys;
    // RFC 7143 13.9: TargetPortalGroupTag in the first Login Response of a normal session.
    expect(parseText(r.responses[0]!.data)['TargetPortalGroupTag']).toMatch(/^\d+$/);
    expect(k['TargetAlias']).toBe('proto');
    expect(k).toMatchObject({
      HeaderDigest: 'None',
      DataDigest: 'None',
      DefaultTime2Wait: '2',
      DefaultTime2Retain: '0',
      IFMarker: 'No',
      OFMarker: 'No',
      ErrorRecoveryLevel: '0',
      InitialR2T: 'No',
      ImmediateData: 'Yes',
      MaxBurstLength: '1048576',
      FirstBurstLength: '262144',
      MaxOutstandingR2T: '1',
      MaxConnections: '1',
      DataPDUInOrder: 'Yes',
      DataSequenceInOrder: 'Yes',
      MaxRecvDataSegmentLength: '262144',
    });
    // A non-zero TSIH in the final response (RFC 7143 11.13: TSIH of the new session).
    expect(r.tsih).not.toBe(0);
    await roundTrip(ini, 0, 1024 * 1024);
    await roundTrip(ini, 4096, 4096);
    ini.close();
  });

  it('VMware ESXi software iSCSI defaults, then a round trip', async () => {
    const ini = await Initiator.connect(t.port);
    const r = await ini.login({
      initiatorName: 'iqn.1998-01.com.vmware:esx-host-1a2b3c4d',
      targetName: t.iqn,
      isid: nextIsid(),
      keys: ESXI_KEYS,
    });
    expect(r.ok).toBe(true);
    expect(r.targetKeys).toMatchObject({
      HeaderDigest: 'None',
      DataDigest: 'None',
      ErrorRecoveryLevel: '0',
      InitialR2T: 'No',
      ImmediateData: 'Yes',
      MaxBurstLength: '262144',
      FirstBurstLength: '262144',
      MaxOutstandingR2T: '1',
      MaxConnections: '1',
    });
    await roundTrip(ini, 8192, 1024 * 1024);
    ini.close();
  });

  it('Windows initiator defaults: ErrorRecoveryLevel=2 is answered 0, digests None, then a round trip', async () => {
    const ini = await Initiator.connect(t.port);
    const r = await ini.login({
      initiatorName: 'iqn.1991-05.com.microsoft:win-host',
      targetName: t.iqn,
      isid: Buffer.from([0x40, 0x00, 0x01, 0x37, 0x00, 0x00]),
      keys: WINDOWS_KEYS,
      leadingKeys: [['InitiatorAlias', 'WIN-HOST']],
    });
    expect(r.ok).toBe(true);
    expect(r.targetKeys).toMatchObject({
      // 13.1: list negotiation picks the first value the target supports: None.
      HeaderDigest: 'None',
      DataDigest: 'None',
      // 13.20: min(2, 0).
      ErrorRecoveryLevel: '0',
      MaxBurstLength: '262144',
      FirstBurstLength: '65536',
      // 13.15: max(0, 2).
      DefaultTime2Wait: '2',
    });
    // Data-In PDUs must fit Windows' 64 KiB MaxRecvDataSegmentLength (checked in roundTrip).
    await roundTrip(ini, 16384, 512 * 1024);
    ini.close();
  });
});

describe('header and data digests (CRC32C)', () => {
  const digestKeys: Array<[string, string]> = [
    ['HeaderDigest', 'CRC32C'],
    ['DataDigest', 'CRC32C'],
    ['MaxRecvDataSegmentLength', '65536'],
    ['InitialR2T', 'No'],
  ];

  it('negotiates CRC32C both ways and moves data with digests on every PDU', async () => {
    const ini = await open({ keys: digestKeys });
    expect(ini.negotiated.headerDigest).toBe(true);
    expect(ini.negotiated.dataDigest).toBe(true);
    // The reader verifies every digest the target sends; a bad one throws.
    await roundTrip(ini, 20000, 768 * 1024);
    const echo = await ini.ping(Buffer.from('digest ping with an odd length!'));
    expect(echo.data.toString()).toBe('digest ping with an odd length!');
    ini.close();
  });

  it('a PDU with a corrupted header digest makes the target close the connection (RFC 7143 7.8)', async () => {
    const ini = await open({ keys: digestKeys });
    ini.send(
      nopOutBhs({ immediate: true, itt: ini.allocItt(), cmdSN: ini.cmdSN, expStatSN: ini.expStatSN }),
      Buffer.alloc(0),
      {
        corruptHeaderDigest: true,
      },
    );
    const seen = await ini.expectClose(3000);
    // Nothing may be answered for a header the target cannot trust.
    expect(seen.filter((p) => p.opcode === Opcode.NOP_IN)).toHaveLength(0);
    await assertServes(t.port, t.iqn);
  });

  it('a NOP-Out with a corrupted data digest is rejected with reason 0x02 and the connection lives on', async () => {
    const ini = await open({ keys: digestKeys });
    const itt = ini.allocItt();
    ini.send(
      nopOutBhs({ immediate: true, itt, cmdSN: ini.cmdSN, expStatSN: ini.expStatSN }),
      Buffer.from('payload'),
      {
        corruptDataDigest: true,
      },
    );
    const rej = await ini.nextPdu();
    expect(rej.opcode).toBe(Opcode.REJECT);
    expect(rejectReason(rej)).toBe(0x02);
    // RFC 7143 11.17: the data segment is the rejected PDU's header.
    expect(rej.data.length).toBe(48);
    expect(u32(rej.data, 16)).toBe(itt);
    expect(rej.itt).toBe(RESERVED_TAG);
    // The discarded ping gets no NOP-In; the next one does.
    const echo = await ini.ping(Buffer.from('again'));
    expect(echo.data.toString()).toBe('again');
    ini.close();
  });
});

describe('CHAP (RFC 7143 12.1.3)', () => {
  it('the right secret logs in and the LUN serves I/O', async () => {
    const ini = await Initiator.connect(t.port);
    const r = await ini.login({
      initiatorName: INITIATOR,
      targetName: chapIqn,
      isid: nextIsid(),
      chap: { user: CHAP_USER, secret: CHAP_SECRET },
    });
    expect(r.ok).toBe(true);
    expect(r.targetKeys['AuthMethod']).toBe('CHAP');
    expect(r.targetKeys['CHAP_A']).toBe('5');
    expect(r.targetKeys['CHAP_C']).toMatch(/^0x[0-9a-f]{32}$/i);
    const rd = await ini.scsi(read10(0, 8), { read: true, edtl: 4096 });
    expect(rd.status).toBe(Status.GOOD);
    ini.close();
  });

  it('a wrong secret gets status 0x0201 and the log names the failure but never the secret', async () => {
    const wrong = 'Wrong-Secret-5c9e1b7d';
    const ini = await Initiator.connect(t.port);
    const r = await ini.login({
      initiatorName: 'iqn.2026-11.io.spindle:intruder',
      targetName: chapIqn,
      isid: nextIsid(),
      chap: { user: CHAP_USER, secret: wrong },
    });
    expect(r.ok).toBe(false);
    expect([r.statusClass, r.statusDetail]).toEqual([0x02, 0x01]);
    await ini.expectClose(3000);
    await new Promise((res) => setTimeout(res, 200));
    const out = t.output();
    expect(out).toMatch(/authentication failed/i);
    expect(out).toContain('iqn.2026-11.io.spindle:intruder');
    expect(out).not.toContain(CHAP_SECRET);
    expect(out).not.toContain(wrong);
  });

  it('a wrong user name fails the same way', async () => {
    const ini = await Initiator.connect(t.port);
    const r = await ini.login({
      initiatorName: INITIATOR,
      targetName: chapIqn,
      isid: nextIsid(),
      chap: { user: 'someone-else', secret: CHAP_SECRET },
    });
    expect([r.statusClass, r.statusDetail]).toEqual([0x02, 0x01]);
    ini.close();
  });

  it('AuthMethod=None, or skipping the security stage, is refused on a CHAP target', async () => {
    const a = await Initiator.connect(t.port);
    const ra = await a.login({ initiatorName: INITIATOR, targetName: chapIqn, isid: nextIsid() });
    expect([ra.statusClass, ra.statusDetail]).toEqual([0x02, 0x01]);
    a.close();
    const b = await Initiator.connect(t.port);
    const rb = await b.login({
      initiatorName: INITIATOR,
      targetName: chapIqn,
      isid: nextIsid(),
      skipSecurity: true,
    });
    expect([rb.statusClass, rb.statusDetail]).toEqual([0x02, 0x01]);
    b.close();
  });
});

describe('discovery and login failures', () => {
  it('a discovery session answers SendTargets=All with every target and its portal', async () => {
    const ini = await Initiator.connect(t.port);
    const r = await ini.login({
      initiatorName: INITIATOR,
      sessionType: 'Discovery',
      isid: nextIsid(),
      keys: [['MaxRecvDataSegmentLength', '32768']],
    });
    expect(r.ok).toBe(true);
    const resp = await ini.text({ SendTargets: 'All' });
    expect(resp.opcode).toBe(Opcode.TEXT_RESPONSE);
    expect(resp.flags & 0x80).toBe(0x80);
    const pairs = parseTextPairs(resp.data);
    const names = pairs.filter(([k]) => k === 'TargetName').map(([, v]) => v);
    expect(names).toEqual(expect.arrayContaining([t.iqn, chapIqn]));
    const addrs = pairs.filter(([k]) => k === 'TargetAddress').map(([, v]) => v);
    for (const a of addrs) expect(a).toMatch(new RegExp(`^127\\.0\\.0\\.1:${t.port},\\d+$`));
    // SCSI commands are not allowed in a discovery session (RFC 7143 4.3 / 6.3).
    ini.send(
      scsiCommandBhs({
        itt: ini.allocItt(),
        cmdSN: ini.takeCmdSN(),
        expStatSN: ini.expStatSN,
        cdb: TEST_UNIT_READY,
      }),
    );
    const rej = await ini.nextPdu();
    expect(rej.opcode).toBe(Opcode.REJECT);
    const lo = await ini.logout();
    expect(lo.bhs[2]).toBe(0);
    await ini.expectClose(3000);
  });

  it('an unknown target name gets status 0x0203 (Not found) and the connection is closed', async () => {
    const ini = await Initiator.connect(t.port);
    const r = await ini.login({
      initiatorName: INITIATOR,
      targetName: 'iqn.2026-11.io.spindle:no-such-target',
      isid: nextIsid(),
    });
    expect(r.ok).toBe(false);
    expect([r.statusClass, r.statusDetail]).toEqual([0x02, 0x03]);
    await ini.expectClose(3000);
  });

  it('a leading login without InitiatorName gets 0x0207 (Missing parameter)', async () => {
    const ini = await Initiator.connect(t.port);
    const p = await ini.loginStep(
      { csg: 0, nsg: 1, transit: true, isid: nextIsid() },
      buildText([
        ['TargetName', t.iqn],
        ['AuthMethod', 'None'],
      ]),
    );
    expect([loginStatus(p).statusClass, loginStatus(p).statusDetail]).toEqual([0x02, 0x07]);
    await ini.expectClose(3000);
  });

  it('an unsupported version range gets 0x0205', async () => {
    const ini = await Initiator.connect(t.port);
    const p = await ini.loginStep(
      { csg: 0, nsg: 1, transit: true, versionMax: 2, versionMin: 1, isid: nextIsid() },
      buildText([
        ['InitiatorName', INITIATOR],
        ['TargetName', t.iqn],
        ['AuthMethod', 'None'],
      ]),
    );
    expect([loginStatus(p).statusClass, loginStatus(p).statusDetail]).toEqual([0x02, 0x05]);
    ini.close();
  });

  it('a SCSI Command before login completes gets a login reject and a close (RFC 7143 6.3)', async () => {
    const ini = await Initiator.connect(t.port);
    ini.send(scsiCommandBhs({ itt: 1, cdb: TEST_UNIT_READY }));
    const seen = await ini.expectClose(3000);
    expect(seen.length).toBeLessThanOrEqual(1);
    if (seen.length === 1) {
      expect(seen[0]!.opcode).toBe(Opcode.LOGIN_RESPONSE);
      expect(loginStatus(seen[0]!).statusClass).toBe(0x02);
    }
  });

  it(
    'a second leading login with the same ISID reinstates the session: the old connection is dropped (RFC 7143 6.3.5)',
    async () => {
      const isid = nextIsid();
      const a = await open({ isid });
      const b = await open({ isid });
      // The target must clean up the old session (implicit logout) before the new one runs.
      expect(await a.waitClosed(3000)).toBe(true);
      const r = await b.scsi(TEST_UNIT_READY, { edtl: 0 });
      expect(r.status).toBe(Status.GOOD);
      b.close();
    },
  );
});

describe('the CmdSN window (RFC 7143 4.2.2.1)', () => {
  it('login sets ExpCmdSN to the login CmdSN and opens a window', async () => {
    const ini = await open({ cmdSN: 1000 });
    expect(ini.expCmdSN).toBe(1000);
    expect((ini.maxCmdSN - ini.expCmdSN) | 0).toBeGreaterThanOrEqual(0);
    ini.close();
  });

  it('ExpCmdSN and MaxCmdSN advance with every non-immediate command', async () => {
    const ini = await open({ cmdSN: 0xfffffffe }); // serial arithmetic across the wrap
    for (let i = 0; i < 4; i++) {
      const expected = (0xfffffffe + i + 1) >>> 0;
      // One command per CmdSN: the new nexus's POWER ON unit attention is not retried.
      const r = await ini.scsi(TEST_UNIT_READY, { edtl: 0, rawUnitAttention: true });
      expect(r.status).toBe(i === 0 ? Status.CHECK_CONDITION : Status.GOOD);
      expect(r.statusPdu.expCmdSN).toBe(expected);
      expect(r.statusPdu.maxCmdSN).toBe(ini.maxCmdSN >>> 0);
      expect(((r.statusPdu.maxCmdSN - r.statusPdu.expCmdSN) | 0) >= 0).toBe(true);
    }
    ini.close();
  });

  it('commands beyond MaxCmdSN, and already-used CmdSNs, are ignored', async () => {
    const ini = await open();
    const beyond = (ini.maxCmdSN + 1) >>> 0;
    const old = (ini.expCmdSN - 1) >>> 0;
    const ittBeyond = ini.allocItt();
    ini.send(
      scsiCommandBhs({ itt: ittBeyond, cmdSN: beyond, expStatSN: ini.expStatSN, cdb: TEST_UNIT_READY }),
    );
    const ittOld = ini.allocItt();
    ini.send(scsiCommandBhs({ itt: ittOld, cmdSN: old, expStatSN: ini.expStatSN, cdb: TEST_UNIT_READY }));
    expect(await ini.maybePdu(400)).toBeNull();
    const before = ini.expCmdSN;
    // The window did not move: the next in-window command is answered normally.
    const echo = await ini.ping(Buffer.alloc(0));
    expect(echo.expCmdSN).toBe(before);
    const r = await ini.scsi(TEST_UNIT_READY, { edtl: 0 });
    expect(r.status).toBe(Status.GOOD);
    expect(r.itt).not.toBe(ittBeyond);
    ini.close();
  });

  it('a queue of commands sent back to back is answered in full', async () => {
    const ini = await open();
    const itts: number[] = [];
    for (let i = 0; i < 32; i++) {
      const itt = ini.allocItt();
      itts.push(itt);
      ini.send(
        scsiCommandBhs({
          read: true,
          itt,
          edtl: 512,
          cmdSN: ini.takeCmdSN(),
          expStatSN: ini.expStatSN,
          cdb: read10(i, 1),
        }),
      );
    }
    const done = new Set<number>();
    while (done.size < itts.length) {
      const p = await ini.nextPdu(3000);
      if ((p.opcode === Opcode.DATA_IN && (p.flags & 0x01) !== 0) || p.opcode === Opcode.SCSI_RESPONSE)
        done.add(p.itt);
    }
    expect([...done].sort()).toEqual([...itts].sort());
    expect(ini.expCmdSN).toBe(ini.cmdSN);
    ini.close();
  });
  it('StatSN advances by one per status-bearing response (RFC 7143 4.2.2.2)', async () => {
    const ini = await open();
    const seen: number[] = [];
    for (let i = 0; i < 5; i++) seen.push((await ini.scsi(TEST_UNIT_READY, { edtl: 0 })).statusPdu.statSN);
    seen.push((await ini.ping()).statSN);
    seen.push((await ini.scsi(read10(0, 1), { read: true, edtl: 512 })).statusPdu.statSN);
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBe((seen[i - 1]! + 1) >>> 0);
    ini.close();
  });

  it(
    'a command after a CmdSN gap waits for the gap; ExpCmdSN never acknowledges a CmdSN not received (RFC 7143 4.2.2.1)',
    async () => {
      const ini = await open();
      const e = ini.expCmdSN;
      const ittB = ini.allocItt();
      // CmdSN e is skipped for now: B (e+1) is inside the window but must not be delivered,
      // nor ExpCmdSN advanced past e, until e arrives.
      ini.send(
        scsiCommandBhs({ itt: ittB, cmdSN: (e + 1) >>> 0, expStatSN: ini.expStatSN, cdb: TEST_UNIT_READY }),
      );
      const early = await ini.maybePdu(300);
      if (early !== null)
        expect((early.expCmdSN - e) | 0, 'ExpCmdSN acknowledged a CmdSN never received').toBeLessThanOrEqual(
          0,
        );
      const ittA = ini.allocItt();
      ini.send(scsiCommandBhs({ itt: ittA, cmdSN: e, expStatSN: ini.expStatSN, cdb: TEST_UNIT_READY }));
      const done = new Set<number>(early ? [early.itt] : []);
      let last = early;
      while (done.size < 2) {
        last = await ini.nextPdu(2000);
        done.add(last.itt);
      }
      expect(done).toEqual(new Set([ittA, ittB]));
      expect(last!.expCmdSN).toBe((e + 2) >>> 0);
      ini.close();
    },
  );
});

describe('R2T and Data-Out (RFC 7143 10.7, 10.8, 11.7, 11.8)', () => {
  it('a write larger than MaxBurstLength is solicited by several R2Ts of at most MaxBurstLength', async () => {
    const ini = await open({
      keys: [
        ['InitialR2T', 'Yes'],
        ['ImmediateData', 'No'],
        ['MaxBurstLength', '65536'],
        ['FirstBurstLength', '65536'],
      ],
    });
    const data = randomBytes(256 * 1024);
    const w = await ini.scsi(write10(30000, 512), { write: true, edtl: data.length, data });
    expect(w.status).toBe(Status.GOOD);
    expect(w.r2ts.map((r) => [u32(r.bhs, 36), u32(r.bhs, 40), u32(r.bhs, 44)])).toEqual([
      [0, 0, 65536],
      [1, 65536, 65536],
      [2, 131072, 65536],
      [3, 196608, 65536],
    ]);
    const r = await ini.scsi(read10(30000, 512), { read: true, edtl: data.length });
    expect(r.data.equals(data)).toBe(true);
    ini.close();
  });

  it('MaxOutstandingR2T=1: one R2T at a time until its data has arrived', async () => {
    const ini = await open({
      keys: [
        ['InitialR2T', 'Yes'],
        ['ImmediateData', 'No'],
        ['MaxBurstLength', '16384'],
        ['FirstBurstLength', '16384'],
      ],
    });
    const itt = ini.allocItt();
    ini.send(
      scsiCommandBhs({
        write: true,
        itt,
        edtl: 65536,
        cmdSN: ini.takeCmdSN(),
        expStatSN: ini.expStatSN,
        cdb: write10(31000, 128),
      }),
    );
    const first = await ini.nextPdu();
    expect(first.opcode).toBe(Opcode.R2T);
    expect(await ini.maybePdu(300)).toBeNull();
    const data = randomBytes(65536);
    ini.sendDataOut(itt, 0, first.ttt, data, 0, 16384);
    const second = await ini.nextPdu();
    expect(second.opcode).toBe(Opcode.R2T);
    expect(u32(second.bhs, 40)).toBe(16384);
    ini.close();
  });

  it('InitialR2T=No: unsolicited Data-Out up to FirstBurstLength, R2Ts for the rest', async () => {
    const ini = await open({
      keys: [
        ['InitialR2T', 'No'],
        ['ImmediateData', 'No'],
        ['MaxBurstLength', '131072'],
        ['FirstBurstLength', '65536'],
      ],
    });
    expect(ini.negotiated.initialR2T).toBe(false);
    const data = randomBytes(256 * 1024);
    const w = await ini.scsi(write10(32000, 512), { write: true, edtl: data.length, data });
    expect(w.status).toBe(Status.GOOD);
    // The first R2T asks for the data after the unsolicited burst.
    expect(u32(w.r2ts[0]!.bhs, 40)).toBe(65536);
    const solicited = w.r2ts.reduce((n, r) => n + u32(r.bhs, 44), 0);
    expect(solicited).toBe(data.length - 65536);
    const r = await ini.scsi(read10(32000, 512), { read: true, edtl: data.length });
    expect(r.data.equals(data)).toBe(true);
    ini.close();
  });

  it('ImmediateData=Yes: a write within FirstBurstLength needs no R2T; a longer one continues at the right offset', async () => {
    const ini = await open({
      keys: [
        ['InitialR2T', 'Yes'],
        ['ImmediateData', 'Yes'],
        ['FirstBurstLength', '65536'],
        ['MaxRecvDataSegmentLength', '262144'],
      ],
    });
    const small = randomBytes(16384);
    const w1 = await ini.scsi(write10(33000, 32), { write: true, edtl: small.length, data: small });
    expect(w1.status).toBe(Status.GOOD);
    expect(w1.r2ts).toHaveLength(0);
    const big = randomBytes(192 * 1024);
    const w2 = await ini.scsi(write10(33100, 384), { write: true, edtl: big.length, data: big });
    expect(w2.status).toBe(Status.GOOD);
    expect(u32(w2.r2ts[0]!.bhs, 40)).toBe(65536);
    const r = await ini.scsi(read10(33000, 32), { read: true, edtl: small.length });
    expect(r.data.equals(small)).toBe(true);
    const r2 = await ini.scsi(read10(33100, 384), { read: true, edtl: big.length });
    expect(r2.data.equals(big)).toBe(true);
    ini.close();
  });

  it('immediate data longer than FirstBurstLength is rejected (RFC 7143 13.14)', async () => {
    const ini = await open({
      keys: [
        ['ImmediateData', 'Yes'],
        ['FirstBurstLength', '4096'],
        ['MaxBurstLength', '65536'],
      ],
    });
    ini.send(
      scsiCommandBhs({
        write: true,
        itt: ini.allocItt(),
        edtl: 8192,
        cmdSN: ini.takeCmdSN(),
        expStatSN: ini.expStatSN,
        cdb: write10(0, 16),
      }),
      Buffer.alloc(8192),
    );
    const rej = await ini.nextPdu();
    expect(rej.opcode).toBe(Opcode.REJECT);
    expect(rejectReason(rej)).toBe(0x04);
    ini.close();
  });

  it('a second command with the ITT of a task in progress is rejected (Task in progress, 0x07)', async () => {
    const { ini, itt } = await writeAwaitingData();
    ini.send(
      scsiCommandBhs({
        read: true,
        itt,
        edtl: 512,
        cmdSN: ini.takeCmdSN(),
        expStatSN: ini.expStatSN,
        cdb: read10(0, 1),
      }),
    );
    const rej = await ini.nextPdu();
    expect(rej.opcode).toBe(Opcode.REJECT);
    expect(rejectReason(rej)).toBe(0x07);
    ini.close();
  });
});

describe('residuals (RFC 7143 11.4.5)', () => {
  it('READ overflow: the CDB asks for more than EDTL', async () => {
    const ini = await open();
    const r = await ini.scsi(read10(0, 8), { read: true, edtl: 2048 });
    expect(r.status).toBe(Status.GOOD);
    expect(r.overflow).toBe(true);
    expect(r.underflow).toBe(false);
    expect(r.residual).toBe(2048);
    expect(r.data.length).toBe(2048);
    ini.close();
  });

  it('READ underflow: EDTL is larger than what the CDB transfers', async () => {
    const ini = await open();
    const r = await ini.scsi(read10(0, 2), { read: true, edtl: 4096 });
    expect(r.status).toBe(Status.GOOD);
    expect(r.underflow).toBe(true);
    expect(r.overflow).toBe(false);
    expect(r.residual).toBe(3072);
    expect(r.data.length).toBe(1024);
    ini.close();
  });

  it('INQUIRY with a short EDTL: overflow, data truncated at EDTL', async () => {
    const ini = await open();
    const r = await ini.scsi(inquiry(96), { read: true, edtl: 36 });
    expect(r.status).toBe(Status.GOOD);
    expect(r.data.length).toBe(36);
    expect(r.overflow).toBe(true);
    ini.close();
  });

  it('WRITE overflow: the CDB asks for more than EDTL; no more than EDTL is solicited', async () => {
    const ini = await open(SOLICITED_ONLY);
    const w = await ini.scsi(write10(40000, 8), { write: true, edtl: 2048, data: Buffer.alloc(2048, 0xaa) });
    expect(w.overflow).toBe(true);
    expect(w.residual).toBe(2048);
    const solicited = w.r2ts.reduce((n, r) => n + u32(r.bhs, 44), 0);
    expect(solicited).toBeLessThanOrEqual(2048);
    ini.close();
  });

  it('WRITE underflow: EDTL is larger than the CDB; only the CDB blocks are written', async () => {
    const ini = await open(SOLICITED_ONLY);
    const z = await ini.scsi(write10(41000, 8), { write: true, edtl: 4096, data: Buffer.alloc(4096, 0) });
    expect(z.status).toBe(Status.GOOD);
    const w = await ini.scsi(write10(41000, 2), { write: true, edtl: 4096, data: Buffer.alloc(4096, 0x5a) });
    expect(w.status).toBe(Status.GOOD);
    expect(w.underflow).toBe(true);
    expect(w.residual).toBe(3072);
    const r = await ini.scsi(read10(41000, 8), { read: true, edtl: 4096 });
    expect(r.data.subarray(0, 1024).every((b) => b === 0x5a)).toBe(true);
    expect(r.data.subarray(1024).every((b) => b === 0)).toBe(true);
    ini.close();
  });

  it('EDTL without R or W bit is an invalid PDU field (RFC 7143 11.3.1)', async () => {
    const ini = await open();
    ini.send(
      scsiCommandBhs({
        itt: ini.allocItt(),
        edtl: 512,
        cmdSN: ini.takeCmdSN(),
        expStatSN: ini.expStatSN,
        cdb: TEST_UNIT_READY,
      }),
    );
    const rej = await ini.nextPdu();
    expect(rej.opcode).toBe(Opcode.REJECT);
    expect(rejectReason(rej)).toBe(0x09);
    ini.close();
  });
});

describe('NOP, Logout, task management, Reject', () => {
  it('NOP-Out ping with data: NOP-In echoes ITT, LUN and data, TTT reserved (RFC 7143 11.18, 11.19)', async () => {
    const ini = await open();
    const payload = randomBytes(3001);
    const before = ini.expStatSN;
    const echo = await ini.ping(payload, { lun: 1 });
    expect(echo.opcode).toBe(Opcode.NOP_IN);
    expect(echo.ttt).toBe(RESERVED_TAG);
    expect(echo.data.equals(payload)).toBe(true);
    expect(echo.bhs[9]).toBe(1);
    expect(echo.statSN).toBe(before);
    // A non-immediate ping consumes a CmdSN.
    const cmdSN = ini.cmdSN;
    const echo2 = await ini.ping(Buffer.alloc(0), { immediate: false });
    expect(echo2.expCmdSN).toBe((cmdSN + 1) >>> 0);
    ini.close();
  });

  it(
    'reflected ping data and Data-In respect a 512-byte initiator MaxRecvDataSegmentLength (RFC 7143 11.18 Ping Data, 13.12)',
    async () => {
      const ini = await open({ keys: [['MaxRecvDataSegmentLength', '512']] });
      const echo = await ini.ping(randomBytes(2000));
      expect(echo.opcode).toBe(Opcode.NOP_IN);
      expect(echo.data.length).toBeLessThanOrEqual(512);
      const r = await ini.scsi(read10(0, 64), { read: true, edtl: 32768 });
      expect(r.status).toBe(Status.GOOD);
      expect(r.dataIns.length).toBe(64);
      for (const d of r.dataIns) expect(d.data.length).toBeLessThanOrEqual(512);
      ini.close();
    },
  );

  it('a NOP-Out answering nothing (ITT and TTT reserved) gets no reply', async () => {
    const ini = await open();
    ini.send(
      nopOutBhs({
        immediate: true,
        itt: RESERVED_TAG,
        ttt: RESERVED_TAG,
        cmdSN: ini.cmdSN,
        expStatSN: ini.expStatSN,
      }),
    );
    expect(await ini.maybePdu(300)).toBeNull();
    ini.close();
  });

  it('Logout (close session) is answered and the target closes the connection', async () => {
    const ini = await open();
    const lo = await ini.logout(0);
    expect(lo.opcode).toBe(Opcode.LOGOUT_RESPONSE);
    expect(lo.bhs[2]).toBe(0);
    expect(lo.flags & 0x80).toBe(0x80);
    await ini.expectClose(3000);
  });

  it('Logout to remove a connection for recovery at ERL 0: response 2 (RFC 7143 11.15.1)', async () => {
    const ini = await open();
    const lo = await ini.logout(2);
    expect(lo.bhs[2]).toBe(2);
    ini.close();
  });

  it('ABORT TASK for a task that does not exist (RefCmdSN outside the window): "Task does not exist"', async () => {
    const ini = await open();
    await ini.scsi(TEST_UNIT_READY, { edtl: 0 });
    const r = await ini.tmf({ fn: 1, rtt: 0x7777, refCmdSN: (ini.expCmdSN - 1) >>> 0 });
    expect(r.opcode).toBe(Opcode.TASK_MGMT_RESPONSE);
    expect(r.bhs[2]).toBe(1);
    ini.close();
  });

  it(
    'ABORT TASK for a command that never arrived, RefCmdSN in the window: "Function complete" (RFC 7143 11.5.1 b)',
    async () => {
      const ini = await open();
      const lost = ini.takeCmdSN(); // this command is "lost": never sent
      const r = await ini.tmf({ fn: 1, rtt: 0x8888, refCmdSN: lost, immediate: false });
      expect(r.bhs[2]).toBe(0);
      // The target considers the lost CmdSN received: ExpCmdSN moves past it and the TMF.
      expect(r.expCmdSN).toBe((lost + 2) >>> 0);
      ini.close();
    },
  );

  it('ABORT TASK for a write waiting for data: Function complete, and no response for the task', async () => {
    const { ini, itt, cmdSN } = await writeAwaitingData();
    const r = await ini.tmf({ fn: 1, rtt: itt, refCmdSN: cmdSN });
    expect(r.bhs[2]).toBe(0);
    expect(await ini.maybePdu(300)).toBeNull();
    // The session carries on.
    expect((await ini.scsi(TEST_UNIT_READY, { edtl: 0 })).status).toBe(Status.GOOD);
    ini.close();
  });

  it('ABORT TASK for a SANITIZE waiting for its operation: Function complete at once, no response; the sanitize goes on (SBC-4 4.11.2)', async () => {
    const ini = await open({ keys: [['ImmediateData', 'Yes']] });
    const lun = 2;
    expect((await ini.scsi(TEST_UNIT_READY, { edtl: 0, lun })).status).toBe(Status.GOOD);
    // SANITIZE OVERWRITE, IMMED = 0: one pass of the byte 77h.
    const list = Buffer.from([0x01, 0x00, 0x00, 0x01, 0x77]);
    const cdb = Buffer.from([0x48, 0x01, 0, 0, 0, 0, 0, 0, list.length, 0]);
    const itt = ini.allocItt();
    const cmdSN = ini.takeCmdSN();
    ini.send(scsiCommandBhs({ write: true, lun, itt, edtl: list.length, cmdSN, expStatSN: ini.expStatSN, cdb }), list);
    const r = await ini.tmf({ fn: 1, lun, rtt: itt, refCmdSN: cmdSN });
    expect(r.bhs[2]).toBe(0);
    // Answered while the sanitize still runs (the command ended, the operation did not).
    const tur = await ini.scsi(TEST_UNIT_READY, { edtl: 0, lun });
    expect(tur.status).toBe(Status.CHECK_CONDITION);
    expect([tur.sense[2]! & 0x0f, tur.sense[12], tur.sense[13]]).toEqual([0x2, 0x04, 0x1b]);
    const deadline = Date.now() + 60_000;
    let last = tur;
    while (last.status !== Status.GOOD && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 50));
      last = await ini.scsi(TEST_UNIT_READY, { edtl: 0, lun });
    }
    expect(last.status).toBe(Status.GOOD);
    // No SCSI Response ever came for the aborted SANITIZE.
    expect(last.pdus.concat(tur.pdus).some((p) => p.itt === itt)).toBe(false);
    const rd = await ini.scsi(read10(524287, 1), { read: true, edtl: 512, lun });
    expect(rd.data.every((b) => b === 0x77)).toBe(true);
    ini.close();
  }, 90_000);

  it('LOGICAL UNIT RESET on a mapped LUN completes; on an unmapped LUN: "LUN does not exist"', async () => {
    const ini = await open();
    expect((await ini.tmf({ fn: 5, lun: 0 })).bhs[2]).toBe(0);
    expect((await ini.tmf({ fn: 5, lun: 9 })).bhs[2]).toBe(2);
    expect((await ini.tmf({ fn: 8, lun: 0, rtt: 1 })).bhs[2]).toBe(4); // TASK REASSIGN at ERL 0
    ini.close();
  });

  it('SNACK at ErrorRecoveryLevel 0 is rejected with the SNACK header echoed', async () => {
    const ini = await open();
    const itt = ini.allocItt();
    ini.send(snackBhs({ type: 1, itt, expStatSN: ini.expStatSN, begRun: 0, runLength: 0 }));
    const rej = await ini.nextPdu();
    expect(rej.opcode).toBe(Opcode.REJECT);
    // RFC 7143 11.16 / 11.17.1: a SNACK the target cannot honour is a protocol error.
    expect(rejectReason(rej)).toBe(0x04);
    expect(rej.data[0]! & 0x3f).toBe(Opcode.SNACK_REQUEST);
    expect(u32(rej.data, 16)).toBe(itt);
    expect((await ini.ping()).opcode).toBe(Opcode.NOP_IN);
    ini.close();
  });

  it('an unknown opcode is rejected with reason 0x05 (Command not supported)', async () => {
    const ini = await open();
    for (const op of [0x1c, 0x0d, 0x3e]) {
      ini.send(rawBhs(op, { itt: 0x4242 }), Buffer.from('abc'));
      const rej = await ini.nextPdu();
      expect(rej.opcode).toBe(Opcode.REJECT);
      expect(rejectReason(rej)).toBe(0x05);
      expect(rej.data[0]! & 0x3f).toBe(op);
    }
    expect((await ini.ping(Buffer.from('still here'))).data.toString()).toBe('still here');
    ini.close();
  });

  it('a Login Request in full feature phase is rejected (protocol error)', async () => {
    const ini = await open();
    ini.send(
      loginBhs({ itt: ini.allocItt(), csg: 1, nsg: 3, transit: true }),
      buildText([['InitiatorName', INITIATOR]]),
    );
    const rej = await ini.nextPdu();
    expect(rej.opcode).toBe(Opcode.REJECT);
    expect(rejectReason(rej)).toBe(0x04);
    ini.close();
  });

  it('a Text Request with an unknown key is answered NotUnderstood', async () => {
    const ini = await open();
    const resp = await ini.text({ 'X-com.example.Key': 'v' });
    expect(parseText(resp.data)).toEqual({ 'X-com.example.Key': 'NotUnderstood' });
    ini.close();
  });

  it('a Data-Out whose TTT does not match the R2T is a protocol error', async () => {
    const { ini, itt, r2t } = await writeAwaitingData();
    ini.send(
      dataOutBhs({ itt, ttt: (r2t.ttt + 1000) >>> 0, bufferOffset: 0, dataSN: 0 }),
      Buffer.alloc(4096),
    );
    const rej = await ini.nextPdu();
    expect(rej.opcode).toBe(Opcode.REJECT);
    ini.close();
  });
});

describe('after all of the above', () => {
  it('the target still serves a fresh initiator and logged no crash', async () => {
    await assertServes(t.port, t.iqn);
    expect(t.proc.exitCode).toBeNull();
    expect(t.output()).not.toMatch(/"level":(50|60)/);
  });
});
