/**
 * A CD-ROM drive (`cdrom: { path }`, MMC-6) on the real target, with real initiators: an
 * ISO9660 image made here with genisoimage is read back whole through qemu-img and checked
 * with isoinfo; the MMC commands are checked byte by byte with exact CDBs through the test
 * initiator; the libiscsi tests that apply to a CD-ROM run through the conformance tool;
 * and a SIGHUP that names another image changes the disc (UNIT ATTENTION 28/00).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONFORMANCE_TOOL, haveConformanceTool, runConformance } from '../helpers/conformance.ts';
import {
  Status,
  TEST_UNIT_READY,
  connectAndLogin,
  inquiry,
  type Initiator,
  type ScsiResult,
} from '../helpers/initiator.ts';
import { run } from '../helpers/run.ts';
import { cleanup, startTarget, type StartedTarget } from '../helpers/target.ts';

const tools = ['genisoimage', 'isoinfo', 'qemu-img', 'iscsi-inq'];
const missing = tools.filter((t) => {
  try {
    execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' });
    return false;
  } catch {
    return true;
  }
});

let t: StartedTarget;
let cfgPath: string;
let iso1: string;
let iso2: string;
let payload: Buffer;

function yaml(port: number, iqn: string, image: string): string {
  return `
clusterId: test
workers: { session: 1, lun: 2 }
devices:
  - name: cd0
    cdrom: { path: ${image} }
  - name: cd1
    cdrom: {}
  - name: cdc
    cdrom: { path: ${iso1} }
targets:
  - iqn: ${iqn}
    portals: ['127.0.0.1:${port}']
    luns: { 0: cd0, 1: cd1, 2: cdc }
`;
}

/** An ISO9660 image (Rock Ridge, Joliet) holding `files`, made by genisoimage. */
function makeIso(dir: string, name: string, volume: string, files: Record<string, Buffer>): string {
  const tree = path.join(dir, `${name}-tree`);
  mkdirSync(tree, { recursive: true });
  for (const [f, data] of Object.entries(files)) writeFileSync(path.join(tree, f), data);
  const iso = path.join(dir, `${name}.iso`);
  execFileSync('genisoimage', ['-quiet', '-R', '-J', '-V', volume, '-o', iso, tree]);
  return iso;
}

async function reload(image: string): Promise<string> {
  writeFileSync(cfgPath, yaml(t.port, t.iqn, image));
  const outcomes = (): string[] =>
    t
      .output()
      .split('\n')
      .filter(
        (l) =>
          /"msg":"configuration (reloaded|reload refused|reload failed)/.test(l) && !l.includes('"field"'),
      );
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

const sense = (r: ScsiResult): [number, number, number] => [r.sense[2]! & 0x0f, r.sense[12]!, r.sense[13]!];
const cdb = (bytes: number[]): Buffer => Buffer.from(bytes);

describe.skipIf(missing.length > 0)(
  `CD-ROM device${missing.length > 0 ? ` (skipped: ${missing.join(', ')} not installed)` : ''}`,
  () => {
    let ini: Initiator;
    const isoBlocks = (file: string): number => statSync(file).size / 2048;

    beforeAll(async () => {
      t = await startTarget({
        yaml: ({ port, iqn, dir }) => {
          payload = randomBytes(4 * 1024 * 1024 + 123);
          iso1 = makeIso(dir, 'first', 'SPINDLE_ONE', {
            'readme.txt': Buffer.from('spindle cdrom\n'),
            'data.bin': payload,
          });
          iso2 = makeIso(dir, 'second', 'SPINDLE_TWO', { 'other.txt': Buffer.from('the second disc\n') });
          return yaml(port, iqn, iso1);
        },
      });
      cfgPath = path.join(t.dir, 'spindle.yaml');
      ini = await connectAndLogin(t.port, t.iqn, { keys: [['MaxRecvDataSegmentLength', '262144']] });
    });

    afterAll(async () => {
      ini?.close();
      const code = await t?.stop('SIGTERM');
      cleanup(t);
      expect(code).toBe(0);
    });

    const scsi = (lun: number, c: Buffer, edtl = 0): Promise<ScsiResult> =>
      ini.scsi(c, { lun, read: edtl > 0, edtl, rawUnitAttention: true });
    /** Take pending unit attentions (POWER ON first) until TEST UNIT READY answers otherwise. */
    const settle = async (lun: number): Promise<ScsiResult> => {
      for (let i = 0; i < 10; i++) {
        const r = await scsi(lun, TEST_UNIT_READY);
        if (!(r.status === Status.CHECK_CONDITION && (r.sense[2]! & 0x0f) === 6)) return r;
      }
      throw new Error('unit attentions never ended');
    };

    it('iscsi-inq: an MMC device with removable medium', async () => {
      const r = await run('iscsi-inq', [t.url(0)]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('Peripheral Device Type:MMC');
      expect(r.stdout).toContain('Removable:1');
    });

    it('the ISO reads back whole through qemu-img, and isoinfo finds its files', async () => {
      const back = path.join(t.dir, 'back.iso');
      const r = await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', t.url(0), back]);
      expect(r.code, r.stderr).toBe(0);
      expect(readFileSync(back).equals(readFileSync(iso1))).toBe(true);
      const info = await run('isoinfo', ['-d', '-i', back]);
      expect(info.stdout).toContain('Volume id: SPINDLE_ONE');
      const data = execFileSync('isoinfo', ['-i', back, '-R', '-x', '/data.bin'], { maxBuffer: 64 << 20 });
      expect(data.equals(payload)).toBe(true);
    });

    it('MMC commands with exact CDBs: INQUIRY, READ CAPACITY, READ TOC, DISC/TRACK INFORMATION, GET CONFIGURATION', async () => {
      expect((await settle(0)).status).toBe(Status.GOOD);
      const blocks = isoBlocks(iso1);
      const inq = await scsi(0, inquiry(96), 96);
      expect([inq.data[0], inq.data[1]! & 0x80]).toEqual([0x05, 0x80]);

      const rc = await scsi(0, cdb([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 8);
      expect([rc.data.readUInt32BE(0), rc.data.readUInt32BE(4)]).toEqual([blocks - 1, 2048]);

      const toc = await scsi(0, cdb([0x43, 0, 0, 0, 0, 0, 0, 0, 0x40, 0]), 0x40);
      expect(toc.status).toBe(Status.GOOD);
      const leadOut = Buffer.alloc(4);
      leadOut.writeUInt32BE(blocks);
      expect([...toc.data]).toEqual([0, 18, 1, 1, 0, 0x14, 1, 0, 0, 0, 0, 0, 0, 0x14, 0xaa, 0, ...leadOut]);

      const di = await scsi(0, cdb([0x51, 0, 0, 0, 0, 0, 0, 0, 34, 0]), 34);
      expect([di.data.readUInt16BE(0), di.data[2], di.data[3], di.data[4], di.data[8]]).toEqual([
        32, 0x0e, 1, 1, 0,
      ]);

      const ti = await scsi(0, cdb([0x52, 0x01, 0, 0, 0, 1, 0, 0, 48, 0]), 48);
      expect([ti.data[2], ti.data[5], ti.data[6], ti.data.readUInt32BE(8), ti.data.readUInt32BE(24)]).toEqual(
        [1, 0x04, 0x01, 0, blocks],
      );

      const cfg = await scsi(0, cdb([0x46, 0x01, 0, 0, 0, 0, 0, 0x04, 0, 0]), 1024);
      expect(cfg.data.readUInt16BE(6)).toBe(0x0008);
      const codes: number[] = [];
      for (let p = 8; p < cfg.data.length; p += 4 + cfg.data[p + 3]!) codes.push(cfg.data.readUInt16BE(p));
      expect(codes).toEqual([0x0000, 0x0001, 0x0002, 0x0003, 0x0010]);

      const caps = await scsi(0, cdb([0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 0xff, 0]), 255);
      expect([caps.data[8]! & 0x3f, caps.data[9], caps.data[14]]).toEqual([0x2a, 30, 0x29]);

      const write = await scsi(0, cdb([0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0]));
      expect(sense(write)).toEqual([5, 0x20, 0]);
    });

    it('an empty drive: MEDIUM NOT PRESENT - TRAY CLOSED, no current profile', async () => {
      const r = await settle(1);
      expect(sense(r)).toEqual([2, 0x3a, 0x01]);
      const cfg = await scsi(1, cdb([0x46, 0, 0, 0, 0, 0, 0, 0x04, 0, 0]), 1024);
      expect(cfg.data.readUInt16BE(6)).toBe(0x0000);
    });

    it('the tray: eject, NOT READY - TRAY OPEN, MediaRemoval event, load; PREVENT locks it', async () => {
      expect((await settle(0)).status).toBe(Status.GOOD);
      const gesn = async (): Promise<number[]> => [
        ...(await scsi(0, cdb([0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0]), 8)).data,
      ];
      expect(await gesn()).toEqual([0, 6, 4, 0x5e, 0, 0x02, 0, 0]);
      expect((await scsi(0, cdb([0x1b, 0, 0, 0, 0x02, 0]))).status).toBe(Status.GOOD);
      expect(sense(await scsi(0, TEST_UNIT_READY))).toEqual([2, 0x3a, 0x02]);
      expect(await gesn()).toEqual([0, 6, 4, 0x5e, 0x03, 0x01, 0, 0]);
      expect((await scsi(0, cdb([0x1b, 0, 0, 0, 0x03, 0]))).status).toBe(Status.GOOD);
      expect((await scsi(0, TEST_UNIT_READY)).status).toBe(Status.GOOD);
      expect(await gesn()).toEqual([0, 6, 4, 0x5e, 0x02, 0x02, 0, 0]);
      expect((await scsi(0, cdb([0x1e, 0, 0, 0, 1, 0]))).status).toBe(Status.GOOD);
      expect(sense(await scsi(0, cdb([0x1b, 0, 0, 0, 0x02, 0])))).toEqual([5, 0x53, 0x02]);
      expect((await scsi(0, cdb([0x1e, 0, 0, 0, 0, 0]))).status).toBe(Status.GOOD);
    });

    it('SIGHUP with another image changes the disc: UNIT ATTENTION 28/00, the new capacity, NewMedia; refused while locked', async () => {
      expect((await settle(0)).status).toBe(Status.GOOD);
      expect((await scsi(0, cdb([0x1e, 0, 0, 0, 1, 0]))).status).toBe(Status.GOOD);
      const refused = await reload(iso2);
      expect(refused).toContain('configuration reload failed');
      expect(refused).toContain('medium removal is prevented');
      expect((await scsi(0, TEST_UNIT_READY)).status).toBe(Status.GOOD); // the same disc, no UA
      expect((await scsi(0, cdb([0x1e, 0, 0, 0, 0, 0]))).status).toBe(Status.GOOD);

      expect(await reload(iso2)).toContain('configuration reloaded');
      expect(t.output()).toContain('disc changed: NOT READY TO READY CHANGE');
      expect(sense(await scsi(0, TEST_UNIT_READY))).toEqual([6, 0x28, 0x00]);
      expect((await scsi(0, TEST_UNIT_READY)).status).toBe(Status.GOOD);
      const rc = await scsi(0, cdb([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 8);
      expect(rc.data.readUInt32BE(0)).toBe(isoBlocks(iso2) - 1);
      const ev = await scsi(0, cdb([0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0]), 8);
      expect(ev.data[4]).toBe(0x02); // NewMedia
      const back = path.join(t.dir, 'back2.iso');
      const r = await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', t.url(0), back]);
      expect(r.code, r.stderr).toBe(0);
      expect(readFileSync(back).equals(readFileSync(iso2))).toBe(true);
      expect(execFileSync('isoinfo', ['-i', back, '-R', '-x', '/other.txt']).toString()).toBe(
        'the second disc\n',
      );
    });

    it.skipIf(!haveConformanceTool)('libiscsi tests that apply to a CD-ROM pass', async () => {
      expect(existsSync(CONFORMANCE_TOOL)).toBe(true);
      // The SBC-only tests skip themselves on a CD-ROM ("Not SBC device"); these apply to any
      // block-addressed device with a removable medium. StartStopUnit.PwrCnd is left out:
      // it wants GOOD for reserved POWER CONDITION values (see conformance-sbc.test.ts).
      const tests = [
        'SCSI.TestUnitReady',
        'SCSI.Inquiry.Standard',
        'SCSI.Inquiry.AllocLength',
        'SCSI.Inquiry.EVPD',
        'SCSI.Inquiry.SupportedVPD',
        'SCSI.Inquiry.VersionDescriptors',
        'SCSI.ReadCapacity10',
        'SCSI.Read10.Simple',
        'SCSI.Read10.BeyondEol',
        'SCSI.Read10.ZeroBlocks',
        'SCSI.Read12.Simple',
        'SCSI.Read12.BeyondEol',
        'SCSI.Read12.ZeroBlocks',
        'SCSI.ModeSense6.AllPages',
        'SCSI.ModeSense6.Residuals',
        'SCSI.ReportSupportedOpcodes',
        'SCSI.StartStopUnit.Simple',
        'SCSI.StartStopUnit.NoLoej',
        'SCSI.PrinReadKeys',
        'SCSI.PrinReportCapabilities',
      ];
      const c = await runConformance(t.dir, 'cdrom', tests.join(','), [t.url(2)]);
      const notPassing = c.results
        .filter((x) => x.result !== 'pass')
        .map((x) => `${x.suite}.${x.test}: ${x.result} ${x.detail}`);
      expect(notPassing, c.stdout).toEqual([]);
      expect(c.results.length).toBeGreaterThanOrEqual(tests.length);
    });
  },
);
