/**
 * The SPC-4 half of "SCSI command sets complete": the libiscsi suites for MODE SENSE,
 * EXTENDED COPY / RECEIVE COPY RESULTS, REPORT SUPPORTED OPERATION CODES and INQUIRY
 * against a live target with a state directory, on a 512-byte RAM LU and a 4096-byte
 * file LU. Nothing may fail or be skipped for a missing feature.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, startTarget, type StartedTarget } from '../helpers/target.ts';
import { expectConformance, haveConformanceTool, runConformance } from '../helpers/conformance.ts';

const REQUIRED = ['Inquiry', 'ModeSense6', 'ExtendedCopy', 'ReceiveCopyResults', 'ReportSupportedOpcodes'];

let t: StartedTarget;

beforeAll(async () => {
  t = await startTarget({
    yaml: ({ port, iqn, dir }) => `
clusterId: spc
stateDir: ${dir}/state
logging: { level: info }
workers: { session: 2, lun: 1 }
devices:
  - name: ram0
    ram: { size: 64MiB }
  - name: file0
    file: { path: ${dir}/file0.img, size: 32MiB }
    blockSize: 4096
targets:
  - iqn: ${iqn}
    portals: ['127.0.0.1:${port}']
    luns: { 0: ram0, 1: file0 }
`,
  });
});

afterAll(async () => {
  await t?.stop();
  cleanup(t);
});

describe.skipIf(!haveConformanceTool)('libiscsi conformance (iscsi-test-cu)', () => {
  it.each([0, 1])('LUN %i: every SPC suite passes with nothing failed or missing', async (lun) => {
    const c = await runConformance(t.dir, `conformance-${lun}`, REQUIRED.map((s) => `SCSI.${s}`).join(','), [t.url(lun)]);
    expectConformance(c, REQUIRED);
    expect(c.stdout.trim().split('\n').at(-1)).toMatch(/^\d+ passed, 0 failed/);
  });
});
