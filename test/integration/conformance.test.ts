/**
 * The libiscsi conformance suite (iscsi-test-cu, scored by shared/tools/iscsi-conformance)
 * against a live target. The suites listed here must pass with nothing failed and
 * nothing skipped for a missing feature; later issues extend the list.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, startTarget, type StartedTarget } from '../helpers/target.ts';
import { expectConformance, haveConformanceTool, runConformance } from '../helpers/conformance.ts';

const REQUIRED = [
  'Inquiry',
  'TestUnitReady',
  'ReadCapacity10',
  'ReadCapacity16',
  'Read6',
  'Read10',
  'Read12',
  'Read16',
  'Write10',
  'Write12',
  'Write16',
  'Verify10',
  'Verify12',
  'Verify16',
  'ModeSense6',
  'ReportSupportedOpcodes',
];


let t: StartedTarget;

beforeAll(async () => {
  t = await startTarget();
});

afterAll(async () => {
  await t?.stop();
  cleanup(t);
});

describe.skipIf(!haveConformanceTool)('libiscsi conformance (iscsi-test-cu)', () => {
  it('every required SCSI suite passes with nothing failed or missing', async () => {
    const c = await runConformance(t.dir, 'conformance', REQUIRED.map((s) => `SCSI.${s}`).join(','), [t.url(0)]);
    expectConformance(c, REQUIRED);
    expect(c.stdout.trim().split('\n').at(-1)).toMatch(/^\d+ passed, 0 failed/);
  });
});
