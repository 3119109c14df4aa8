/**
 * The libiscsi conformance suite (iscsi-test-cu, scored by shared/tools/iscsi-conformance)
 * against a live target. The suites listed here must pass with nothing failed and
 * nothing skipped for a missing feature; later issues extend the list.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO, cleanup, startTarget, type StartedTarget } from '../helpers/target.ts';
import { run } from '../helpers/run.ts';

const TOOL = path.resolve(REPO, '../shared/tools/iscsi-conformance');
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

interface SuiteScore {
  pass: number;
  fail: number;
  missing: number;
  config: number;
}

let t: StartedTarget;

beforeAll(async () => {
  t = await startTarget();
});

afterAll(async () => {
  await t?.stop();
  cleanup(t);
});

describe.skipIf(!existsSync(TOOL))('libiscsi conformance (iscsi-test-cu)', () => {
  it('every required SCSI suite passes with nothing failed or missing', async () => {
    const json = path.join(t.dir, 'conformance.json');
    const pattern = REQUIRED.map((s) => `SCSI.${s}`).join(',');
    const r = await run(TOOL, ['--tests', pattern, '--json', json, '--log', path.join(t.dir, 'conformance.log'), t.url(0)], 600_000);
    expect(existsSync(json), r.stdout + r.stderr).toBe(true);
    const results = JSON.parse(readFileSync(json, 'utf8')) as { suite: string; test: string; result: string; detail: string }[];
    const table = new Map<string, SuiteScore>();
    for (const x of results) {
      const s = table.get(x.suite) ?? { pass: 0, fail: 0, missing: 0, config: 0 };
      s[x.result as keyof SuiteScore]++;
      table.set(x.suite, s);
    }
    const bad = results.filter((x) => x.result === 'fail' || x.result === 'missing');
    expect(bad, r.stdout).toEqual([]);
    for (const suite of REQUIRED) {
      const s = table.get(suite);
      expect(s, `suite ${suite} did not run:\n${r.stdout}`).toBeDefined();
      expect(s!.pass, `${suite} passed nothing`).toBeGreaterThan(0);
    }
    expect(r.stdout.trim().split('\n').at(-1)).toMatch(/^\d+ passed, 0 failed/);
  });
});
