/**
 * The SPC-4 half of "SCSI command sets complete": the libiscsi suites for MODE SENSE,
 * EXTENDED COPY / RECEIVE COPY RESULTS, REPORT SUPPORTED OPERATION CODES and INQUIRY
 * against a live target with a state directory, on a 512-byte RAM LU and a 4096-byte
 * file LU. Nothing may fail or be skipped for a missing feature.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO, cleanup, startTarget, type StartedTarget } from '../helpers/target.ts';
import { run } from '../helpers/run.ts';

const TOOL = path.resolve(REPO, '../shared/tools/iscsi-conformance');
const REQUIRED = ['Inquiry', 'ModeSense6', 'ExtendedCopy', 'ReceiveCopyResults', 'ReportSupportedOpcodes'];

interface SuiteScore {
  pass: number;
  fail: number;
  missing: number;
  config: number;
}

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

describe.skipIf(!existsSync(TOOL))('libiscsi conformance (iscsi-test-cu)', () => {
  it.each([0, 1])('LUN %i: every SPC suite passes with nothing failed or missing', async (lun) => {
    const json = path.join(t.dir, `conformance-${lun}.json`);
    const pattern = REQUIRED.map((s) => `SCSI.${s}`).join(',');
    const r = await run(TOOL, ['--tests', pattern, '--json', json, '--log', path.join(t.dir, `conformance-${lun}.log`), t.url(lun)], 600_000);
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
