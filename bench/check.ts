/**
 * The regression check, a local tool (not a timed CI test):
 *
 *   npm run bench:check -- [--baseline bench/baseline.json] [--threshold 0.1] [result.json]
 *       compares a result's spindle/tgtd ratios (default: the newest result in
 *       bench/results/ that measured any of the baseline's ratios) with the baseline and
 *       exits 1 naming every ratio that dropped by more than the threshold beyond the
 *       measured spread (see analysis/regression.ts), 0 otherwise, 2 on a usage error;
 *   npm run bench:baseline -- [--out bench/baseline.json] [result.json]
 *       writes the baseline from a result (default: the newest).
 */
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  baselineFrom,
  CheckStatus,
  compareToBaseline,
  DEFAULT_THRESHOLD,
  formatCheck,
  parseBaseline,
  type Baseline,
} from './analysis/regression.ts';
import type { Ratio } from './analysis/ratio.ts';
import { REPO } from './harness/processes.ts';
import { newestResult, RESULT_SCHEMA, resultsDir, type BenchResult } from './report/result.ts';

const DEFAULT_BASELINE = path.join(REPO, 'bench', 'baseline.json');

async function readResult(file: string): Promise<BenchResult> {
  const doc = JSON.parse(await readFile(file, 'utf8')) as Partial<BenchResult>;
  if (doc.schema !== RESULT_SCHEMA) {
    throw new Error(`${file} is not a ${RESULT_SCHEMA} result (written by an older bench?)`);
  }
  return doc as BenchResult;
}

/** Newest result (by name, i.e. time) measuring at least one of `keys`. */
async function newestMatching(keys: readonly string[]): Promise<string | undefined> {
  let names: string[] = [];
  try {
    names = (await readdir(resultsDir(REPO)))
      .filter((n) => n.endsWith('.json'))
      .sort()
      .reverse();
  } catch {}
  for (const n of names) {
    const file = path.join(resultsDir(REPO), n);
    try {
      const r = await readResult(file);
      if (keys.some((k) => r.ratios[k] !== undefined)) return file;
    } catch {}
  }
  return undefined;
}

async function check(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { baseline: { type: 'string' }, threshold: { type: 'string' } },
  });
  const threshold = values.threshold === undefined ? DEFAULT_THRESHOLD : Number(values.threshold);
  if (!(threshold > 0 && threshold < 1)) {
    console.error('bench:check: --threshold must be a fraction between 0 and 1, e.g. 0.1 for 10%');
    return 2;
  }
  const baselineFile = path.resolve(values.baseline ?? DEFAULT_BASELINE);
  let baseline: Baseline;
  try {
    baseline = parseBaseline(JSON.parse(await readFile(baselineFile, 'utf8')));
  } catch (err) {
    console.error(
      `bench:check: cannot use ${path.relative(REPO, baselineFile)}: ${err instanceof Error ? err.message : String(err)}`,
    );
    console.error('write one with: npm run bench:baseline -- bench/results/<result>.json');
    return 2;
  }
  const resultFile =
    positionals[0] !== undefined
      ? path.resolve(positionals[0])
      : await newestMatching(Object.keys(baseline.ratios));
  if (resultFile === undefined) {
    console.error(
      'bench:check: no result in bench/results/ measures any ratio of the baseline; run npm run bench first',
    );
    return 2;
  }
  const result = await readResult(resultFile);
  const report = compareToBaseline(result.ratios, baseline, threshold);
  console.log(
    `result   ${path.relative(REPO, resultFile)} (commit ${result.environment.git.commit.slice(0, 12)}${result.environment.git.dirty ? ', dirty' : ''})`,
  );
  console.log(
    `baseline ${path.relative(REPO, baselineFile)} (from ${baseline.source.file}, commit ${baseline.source.commit.slice(0, 12)}${baseline.source.dirty ? ', dirty' : ''}, ${baseline.source.host})`,
  );
  console.log(
    `a regression: ratio down by more than ${Math.round(threshold * 100)}% with the whole spread of rounds below the baseline's\n`,
  );
  for (const c of report.checks) console.log(formatCheck(c));
  for (const k of report.notMeasured) console.log(`${'-'.padEnd(10)} ${k}: not in this result`);
  if (report.checks.length === 0) {
    console.error('\nbench:check: nothing compared');
    return 2;
  }
  const noisy = report.checks.filter((c) => c.status === CheckStatus.NOISY_DROP);
  if (noisy.length > 0)
    console.log(
      `\n${noisy.length} drop(s) within the spread of rounds: rerun with more --rounds to settle them`,
    );
  if (report.regressed.length > 0) {
    console.log(`\nREGRESSED: ${report.regressed.map((c) => c.key).join('; ')}`);
    return 1;
  }
  console.log('\nno regression');
  return 0;
}

async function baseline(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { out: { type: 'string' } },
  });
  const resultFile = positionals[0] !== undefined ? path.resolve(positionals[0]) : await newestResult(REPO);
  if (resultFile === undefined) {
    console.error('bench:baseline: no result in bench/results/; run npm run bench first');
    return 2;
  }
  const result = await readResult(resultFile);
  const ratios: Record<string, Ratio> = { ...result.ratios };
  const b = baselineFrom(ratios, {
    file: path.relative(REPO, resultFile),
    date: result.date,
    commit: result.environment.git.commit,
    dirty: result.environment.git.dirty,
    host: `${result.environment.host.cores} cores, ${result.environment.host.model}, ${result.environment.host.kernel}`,
  });
  if (Object.keys(b.ratios).length === 0) {
    console.error(`bench:baseline: ${path.relative(REPO, resultFile)} has no ratios`);
    return 2;
  }
  const out = path.resolve(values.out ?? DEFAULT_BASELINE);
  await writeFile(out, `${JSON.stringify(b, null, 2)}\n`);
  console.log(
    `wrote ${path.relative(REPO, out)}: ${Object.keys(b.ratios).length} ratios from ${b.source.file}`,
  );
  if (result.environment.git.dirty) console.log('note: that result was measured on a dirty tree');
  if (result.settings['quick'] === true)
    console.log('note: that result is a --quick run (1 round, no spread): a baseline wants full rounds');
  return 0;
}

const [verb, ...rest] = process.argv.slice(2);
if (verb === 'check') process.exitCode = await check(rest);
else if (verb === 'baseline') process.exitCode = await baseline(rest);
else {
  console.error('usage: node bench/check.ts check|baseline [options] [result.json]');
  process.exitCode = 2;
}
