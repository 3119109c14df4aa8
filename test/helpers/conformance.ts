/**
 * Runs the libiscsi conformance suite through shared/tools/iscsi-conformance and checks
 * its verdicts: every test passes except the KNOWN ones (each with its reason), a KNOWN
 * test that starts passing must be removed from the list, and every listed suite
 * passes at least one test (so a suite that silently did not run cannot look green).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { REPO } from './target.ts';
import { run } from './run.ts';

export const CONFORMANCE_TOOL = path.resolve(REPO, '../shared/tools/iscsi-conformance');
/** The tool lives beside the repository (shared/); tests skip where it is absent. */
export const haveConformanceTool = existsSync(CONFORMANCE_TOOL);

export interface ConformanceResult {
  suite: string;
  test: string;
  result: 'pass' | 'fail' | 'missing' | 'config';
  detail: string;
}

export interface ConformanceRun {
  results: ConformanceResult[];
  stdout: string;
}

/** Run `tests` (an iscsi-test-cu pattern list, e.g. "SCSI.Read10,SCSI.Write10") against `urls`. */
export async function runConformance(
  dir: string,
  name: string,
  tests: string,
  urls: string[],
  timeoutMs = 600_000,
): Promise<ConformanceRun> {
  const json = path.join(dir, `${name}.json`);
  const log = path.join(dir, `${name}.log`);
  const r = await run(CONFORMANCE_TOOL, ['--tests', tests, '--json', json, '--log', log, ...urls], timeoutMs);
  expect(existsSync(json), `conformance tool wrote no results:\n${r.stdout}${r.stderr}`).toBe(true);
  return { results: JSON.parse(readFileSync(json, 'utf8')) as ConformanceResult[], stdout: r.stdout };
}

/** Assert the verdicts (see the file comment). */
export function expectConformance(
  c: ConformanceRun,
  suites: readonly string[],
  known: Readonly<Record<string, string>> = {},
): void {
  const id = (x: ConformanceResult) => `${x.suite}.${x.test}`;
  const bad = c.results.filter((x) => x.result === 'fail' || x.result === 'missing');
  const unexpected = bad.filter((x) => known[id(x)] === undefined);
  expect(unexpected, c.stdout).toEqual([]);
  const badIds = new Set(bad.map(id));
  const nowPassing = Object.keys(known).filter((k) => !badIds.has(k));
  expect(nowPassing, 'known failures that pass now: remove them from the KNOWN list').toEqual([]);
  for (const suite of suites) {
    const passed = c.results.some((x) => x.suite === suite && x.result === 'pass');
    expect(passed, `suite ${suite} passed nothing:\n${c.stdout}`).toBe(true);
  }
}
