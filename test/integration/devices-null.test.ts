/**
 * The null device (`null: { size }`, written with the bare YAML `null:` key here) on the
 * real target: a disk to every initiator, whose reads return zeros and whose writes are
 * dropped; the libiscsi tests that do not read back what they wrote pass on it.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveConformanceTool, runConformance } from '../helpers/conformance.ts';
import {
  Status,
  TEST_UNIT_READY,
  connectAndLogin,
  read10,
  write10,
  type Initiator,
} from '../helpers/initiator.ts';
import { run } from '../helpers/run.ts';
import { cleanup, startTarget, type StartedTarget } from '../helpers/target.ts';

let t: StartedTarget;
let ini: Initiator;

beforeAll(async () => {
  t = await startTarget({
    yaml: ({ port, iqn }) => `
clusterId: test
workers: { session: 1, lun: 1 }
devices:
  - name: nul
    null: { size: 1GiB }
  - name: nul4k
    null: { size: 256MiB }
    blockSize: 4096
targets:
  - iqn: ${iqn}
    portals: ['127.0.0.1:${port}']
    luns: { 0: nul, 1: nul4k }
`,
  });
  ini = await connectAndLogin(t.port, t.iqn, { keys: [['MaxRecvDataSegmentLength', '262144']] });
});

afterAll(async () => {
  ini?.close();
  const code = await t?.stop('SIGTERM');
  cleanup(t);
  expect(code).toBe(0);
});

describe('null device', () => {
  it('is a disk of the configured size to initiators', async () => {
    const inq = await run('iscsi-inq', [t.url(0)]);
    expect(inq.stdout).toContain('Peripheral Device Type:DIRECT_ACCESS');
    const rc = await run('iscsi-readcapacity16', [t.url(0)]);
    expect(rc.stdout).toContain(`Total size:${1024 * 1024 * 1024}`);
    const rc4k = await run('iscsi-readcapacity16', [t.url(1)]);
    expect(rc4k.stdout).toContain('LOGICAL BLOCK LENGTH IN BYTES:4096');
    expect(rc4k.stdout).toContain(`Total size:${256 * 1024 * 1024}`);
  });

  it('accepts writes and forgets them: qemu-img reads back zeros', async () => {
    const src = path.join(t.dir, 'random.img');
    writeFileSync(src, randomBytes(8 * 1024 * 1024));
    const w = await run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, t.url(1)]);
    expect(w.code, w.stderr).toBe(0);
    const back = path.join(t.dir, 'back.img');
    const r = await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', t.url(1), back]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(back).every((b) => b === 0)).toBe(true);
  });

  it('checks every CDB as a disk does: WRITE, READ, SYNCHRONIZE CACHE, LBA range', async () => {
    await ini.scsi(TEST_UNIT_READY, { lun: 0, edtl: 0 });
    const w = await ini.scsi(write10(100, 8), { lun: 0, edtl: 4096, write: true, data: randomBytes(4096) });
    expect(w.status).toBe(Status.GOOD);
    const r = await ini.scsi(read10(100, 8), { lun: 0, edtl: 4096, read: true });
    expect(r.status).toBe(Status.GOOD);
    expect(r.data.every((b) => b === 0)).toBe(true);
    expect((await ini.scsi(Buffer.from([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]), { lun: 0, edtl: 0 })).status).toBe(
      Status.GOOD,
    );
    const beyond = await ini.scsi(read10(2 * 1024 * 1024, 1), { lun: 0, edtl: 512, read: true });
    expect([beyond.status, beyond.sense[2]! & 0x0f, beyond.sense[12]]).toEqual([
      Status.CHECK_CONDITION,
      5,
      0x21,
    ]);
  });

  it.skipIf(!haveConformanceTool)('libiscsi tests that do not read back their writes pass', async () => {
    const suites = [
      'SCSI.TestUnitReady',
      'SCSI.Inquiry',
      'SCSI.ReadCapacity10',
      'SCSI.ReadCapacity16',
      'SCSI.Read10',
      'SCSI.Read16',
      'SCSI.Write10',
      'SCSI.Write16',
      'SCSI.Prefetch10',
      'SCSI.ModeSense6',
      'SCSI.ReportSupportedOpcodes',
      'SCSI.Write12',
      'SCSI.Read12',
      'SCSI.ReadDefectData10',
    ];
    const c = await runConformance(t.dir, 'null', suites.join(','), [t.url(0)]);
    const bad = c.results
      .filter((x) => x.result === 'fail' || x.result === 'missing')
      .map((x) => `${x.suite}.${x.test}: ${x.detail}`);
    expect(bad, c.stdout).toEqual([]);
    for (const s of suites)
      expect(
        c.results.some((x) => `SCSI.${x.suite}` === s && x.result === 'pass'),
        s,
      ).toBe(true);
  });
});
