/**
 * Runtime reconfiguration (supervisor/reload.ts): the operator edits the configuration
 * file and sends SIGHUP; live sessions see the change through the unit attentions SPC
 * requires. One target, driven through a sequence of files, with the TypeScript test
 * initiator (exact sense checks) and libiscsi (a real initiator sees the new capacity).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, startTarget, type StartedTarget } from '../helpers/target.ts';
import { Initiator, Status, TEST_UNIT_READY, connectAndLogin, read10, write10, type ScsiResult } from '../helpers/initiator.ts';
import { run } from '../helpers/run.ts';

const KEEP = 'iqn.2026-11.io.spindle:reconf-keep';
const OTHER = 'iqn.2026-11.io.spindle:reconf-other';
const MiB = 1024 * 1024;

let t: StartedTarget;
let cfgPath: string;

interface Shape {
  ram0?: string;
  extraDevices?: string;
  luns?: string;
  acls?: string;
  aluaStates?: string;
  iscsi?: string;
  portals?: string;
}

function yaml(port: number, iqn: string, dir: string, s: Shape = {}): string {
  return `
clusterId: test
workers: { session: 2, lun: 2 }
${s.iscsi ?? ''}
devices:
  - name: ram0
    ram: { size: ${s.ram0 ?? '8MiB'} }
  - name: file0
    file: { path: ${dir}/file0.img, size: 4MiB }
${s.extraDevices ?? ''}
targets:
  - iqn: ${iqn}
    portals: [${s.portals ?? `'127.0.0.1:${port}'`}]
    luns: ${s.luns ?? '{ 0: ram0, 1: file0 }'}
${s.acls ?? ''}
${s.aluaStates ?? ''}
`;
}

/** Write the file, send SIGHUP and return the reload's outcome log line. */
async function reload(s: Shape): Promise<string> {
  writeFileSync(cfgPath, yaml(t.port, t.iqn, t.dir, s));
  // "reload refused" is logged once per problem (with "field") and once to conclude.
  const outcomes = () =>
    t
      .output()
      .split('\n')
      .filter((l) => /"msg":"configuration (reloaded|reload refused|reload failed)/.test(l) && !l.includes('"field"'));
  const before = outcomes().length;
  t.proc.kill('SIGHUP');
  const deadline = Date.now() + 10_000;
  for (;;) {
    const done = outcomes();
    if (done.length > before) return done[done.length - 1]!;
    if (Date.now() > deadline) throw new Error(`no reload outcome:\n${t.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function senseOf(r: ScsiResult): [number, number, number] {
  return [r.sense[2]! & 0x0f, r.sense[12]!, r.sense[13]!];
}

function readCapacity10(): Buffer {
  const c = Buffer.alloc(10);
  c[0] = 0x25;
  return c;
}

function reportLuns(): Buffer {
  const c = Buffer.alloc(12);
  c[0] = 0xa0;
  c.writeUInt32BE(4096, 6);
  return c;
}

function lunsOf(r: ScsiResult): number[] {
  const n = r.data.readUInt32BE(0) / 8;
  return Array.from({ length: n }, (_, i) => r.data.readUInt16BE(8 + 8 * i) & 0x3fff);
}

function rtpgStateOfFirstGroup(r: ScsiResult): number {
  return r.data[4]! & 0x0f;
}

async function tur(ini: Initiator, lun: number): Promise<ScsiResult> {
  return ini.scsi(TEST_UNIT_READY, { lun, edtl: 0, rawUnitAttention: true });
}

/** Clear what is pending (POWER ON etc.) on `lun` with TEST UNIT READY until GOOD. */
async function settle(ini: Initiator, lun: number): Promise<void> {
  for (let i = 0; i < 10; i++) if ((await tur(ini, lun)).status === Status.GOOD) return;
  throw new Error(`LUN ${lun} never became GOOD`);
}

beforeAll(async () => {
  t = await startTarget({ yaml: ({ port, iqn, dir }) => yaml(port, iqn, dir) });
  cfgPath = path.join(t.dir, 'spindle.yaml');
});

afterAll(async () => {
  await t?.stop();
  cleanup(t);
});

describe('configuration reload (SIGHUP)', () => {
  let keep: Initiator;
  let other: Initiator;

  it('a device that grows: CAPACITY DATA HAS CHANGED, then the new capacity and blocks serve', async () => {
    keep = await connectAndLogin(t.port, t.iqn, { initiatorName: KEEP });
    other = await connectAndLogin(t.port, t.iqn, { initiatorName: OTHER });
    for (const ini of [keep, other]) for (const lun of [0, 1]) await settle(ini, lun);

    expect(await reload({ ram0: '16MiB' })).toContain('configuration reloaded');
    for (const ini of [keep, other]) {
      const ua = await tur(ini, 0);
      expect(ua.status).toBe(Status.CHECK_CONDITION);
      expect(senseOf(ua)).toEqual([0x06, 0x2a, 0x09]); // CAPACITY DATA HAS CHANGED
      expect((await tur(ini, 1)).status).toBe(Status.GOOD); // the other LU did not change
    }
    const cap = await keep.scsi(readCapacity10(), { read: true, edtl: 8 });
    expect(cap.data.readUInt32BE(0)).toBe((16 * MiB) / 512 - 1);
    const last = (16 * MiB) / 512 - 1;
    const block = Buffer.alloc(512, 0x5a);
    expect((await keep.scsi(write10(last, 1), { write: true, data: block, edtl: 512 })).status).toBe(Status.GOOD);
    const back = await other.scsi(read10(last, 1), { read: true, edtl: 512 });
    expect(back.data.equals(block)).toBe(true);
    // A real initiator sees the new size.
    const r = await run('iscsi-readcapacity16', [t.url(0)]);
    expect(r.stdout).toContain(`RETURNED LOGICAL BLOCK ADDRESS:${last}`);
  });

  it('a new LUN in the map: REPORTED LUNS DATA HAS CHANGED at every LU, cleared by REPORT LUNS', async () => {
    expect(
      await reload({ ram0: '16MiB', extraDevices: '  - name: ram2\n    ram: { size: 2MiB }', luns: '{ 0: ram0, 1: file0, 2: ram2 }' }),
    ).toContain('configuration reloaded');
    const ua = await tur(keep, 1);
    expect(senseOf(ua)).toEqual([0x06, 0x3f, 0x0e]);
    const rl = await keep.scsi(reportLuns(), { read: true, edtl: 4096 });
    expect(rl.status).toBe(Status.GOOD);
    expect(lunsOf(rl)).toEqual([0, 1, 2]);
    // REPORT LUNS cleared the condition at LU 0 too (SPC-4 6.33).
    expect((await tur(keep, 0)).status).toBe(Status.GOOD);
    // The new LU: first contact reports POWER ON, then it serves.
    const first = await tur(keep, 2);
    expect(senseOf(first)).toEqual([0x06, 0x29, 0x00]);
    expect((await keep.scsi(read10(0, 1), { lun: 2, read: true, edtl: 512 })).status).toBe(Status.GOOD);
    // The other initiator has not run REPORT LUNS: its condition is still pending.
    expect(senseOf(await tur(other, 0))).toEqual([0x06, 0x3f, 0x0e]);
  });

  it('an ACL edit: the initiator that loses access loses its session; the other sees only its own map', async () => {
    const acls = `    defaultAccess: deny\n    acls:\n      - initiator: ${KEEP}\n        luns: { 0: ram0, 5: ram2 }`;
    expect(
      await reload({ ram0: '16MiB', extraDevices: '  - name: ram2\n    ram: { size: 2MiB }', luns: '{ 0: ram0, 1: file0, 2: ram2 }', acls }),
    ).toContain('configuration reloaded');
    expect(await other.waitClosed(3000)).toBe(true);
    const again = await Initiator.connect(t.port);
    const denied = await again.login({ initiatorName: OTHER, targetName: t.iqn });
    expect([denied.statusClass, denied.statusDetail]).toEqual([0x02, 0x02]); // AUTHORIZATION FAILURE
    again.close();

    expect(senseOf(await tur(keep, 0))).toEqual([0x06, 0x3f, 0x0e]);
    const rl = await keep.scsi(reportLuns(), { read: true, edtl: 4096 });
    expect(lunsOf(rl)).toEqual([0, 5]);
    const gone = await tur(keep, 1);
    expect(senseOf(gone)).toEqual([0x05, 0x25, 0x00]); // LOGICAL UNIT NOT SUPPORTED
    // ram2 is now LUN 5 for this initiator: the same LU, data and all.
    expect((await tur(keep, 5)).status).toBe(Status.GOOD);
  });

  it('a device removed from the file is taken offline once unmapped', async () => {
    const acls = `    defaultAccess: deny\n    acls:\n      - initiator: ${KEEP}\n        luns: { 0: ram0 }`;
    expect(await reload({ ram0: '16MiB', luns: '{ 0: ram0, 1: file0 }', acls })).toContain('configuration reloaded');
    expect(t.output()).toMatch(/"device":"ram2".*"msg":"logical unit removed"/);
    expect(senseOf(await tur(keep, 0))).toEqual([0x06, 0x3f, 0x0e]);
    expect(senseOf(await tur(keep, 5))).toEqual([0x05, 0x25, 0x00]);
  });

  it('an ALUA state change: ASYMMETRIC ACCESS STATE CHANGED, then the state is enforced and reported', async () => {
    const acls = `    defaultAccess: deny\n    acls:\n      - initiator: ${KEEP}\n        luns: { 0: ram0 }`;
    const base = { ram0: '16MiB', luns: '{ 0: ram0, 1: file0 }', acls };
    expect(await reload({ ...base, aluaStates: `aluaStates: { '127.0.0.1:${t.port}': standby }` })).toContain(
      'configuration reloaded',
    );
    const ua = await tur(keep, 0);
    expect(senseOf(ua)).toEqual([0x06, 0x2a, 0x06]);
    const refused = await keep.scsi(read10(0, 1), { read: true, edtl: 512 });
    expect(senseOf(refused)).toEqual([0x02, 0x04, 0x0b]); // NOT READY, target port in standby
    const c = Buffer.alloc(12);
    c[0] = 0xa3;
    c[1] = 0x0a;
    c.writeUInt32BE(1024, 6);
    const rtpg = await keep.scsi(c, { read: true, edtl: 1024 });
    expect(rtpg.status).toBe(Status.GOOD);
    expect(rtpgStateOfFirstGroup(rtpg)).toBe(0x2); // standby

    expect(await reload(base)).toContain('configuration reloaded');
    expect(senseOf(await tur(keep, 0))).toEqual([0x06, 0x2a, 0x06]);
    expect((await keep.scsi(read10(0, 1), { read: true, edtl: 512 })).status).toBe(Status.GOOD);
  });

  it('a file that cannot be applied live is refused as a whole, naming each field; the target keeps serving', async () => {
    const acls = `    defaultAccess: deny\n    acls:\n      - initiator: ${KEEP}\n        luns: { 0: ram0 }`;
    const base = { ram0: '16MiB', luns: '{ 0: ram0, 1: file0 }', acls };
    const shrink = await reload({ ...base, ram0: '8MiB', iscsi: 'iscsi: { maxBurstLength: 131072 }' });
    expect(shrink).toContain('configuration reload refused');
    expect(t.output()).toContain('configuration reload refused: devices[0].ram.size: device \\"ram0\\" cannot shrink');
    expect(t.output()).toContain('configuration reload refused: iscsi: changed');
    const portal = await reload({ ...base, portals: `'127.0.0.1:${t.port}', '127.0.0.1:1'` });
    expect(portal).toContain('configuration reload refused');
    expect(t.output()).toContain('targets[0].portals[1]: a new portal needs a restart');
    const invalid = await reload({ ...base, luns: '{ 0: nosuchdevice }' });
    expect(invalid).toContain('the file is invalid');
    expect(t.output()).toContain('nosuchdevice');
    // Nothing changed: the same LUN, the same capacity, no unit attention.
    expect((await tur(keep, 0)).status).toBe(Status.GOOD);
    const cap = await keep.scsi(readCapacity10(), { read: true, edtl: 8 });
    expect(cap.data.readUInt32BE(0)).toBe((16 * MiB) / 512 - 1);
    keep.close();
    expect(t.proc.exitCode).toBeNull();
  });
});
