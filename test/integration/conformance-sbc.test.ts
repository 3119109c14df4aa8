/**
 * The SBC-4 half of the libiscsi conformance suite (iscsi-test-cu, scored by
 * shared/tools/iscsi-conformance), run against one LUN per device setup: plain RAM,
 * a 4096-byte file device, a read-only device, a thin device (512-byte logical blocks
 * in 4096-byte physical blocks), a thin file device, a removable device, and a large
 * file device for the sanitize that must outlast resets.
 *
 * Every test must pass or be skipped for the LUN's setup ("config"), except:
 * - the entries of KNOWN, each with the reason it cannot pass; a KNOWN entry that
 *   starts passing fails this test too, so the list only shrinks;
 * - the entries of `bySetup`: tests that libiscsi skips because the LU, by its
 *   configuration, does not offer what the test needs, with a skip message the scoring
 *   tool counts as "missing". Each must be exactly that skip (never a failure, never
 *   another skip reason), and must pass on the setup named in `coveredBy`, so nothing
 *   goes untested;
 * - the entries of `elsewhere`: tests not run on this setup at all because they need
 *   what only another setup has (SCSI.Sanitize.Reset needs a sanitize that lasts
 *   seconds); they too must pass on the setup named in `coveredBy`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, statfsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO, cleanup, startTarget, type StartedTarget } from '../helpers/target.ts';
import { run } from '../helpers/run.ts';

const TOOL = path.resolve(REPO, '../shared/tools/iscsi-conformance');

const WRITE_SUITES = [
  'CompareAndWrite',
  'OrWrite',
  'WriteVerify10',
  'WriteVerify12',
  'WriteVerify16',
  'WriteSame10',
  'WriteSame16',
  'Unmap',
  'Sanitize',
  'WriteAtomic16',
  'Write10',
  'Write12',
  'Write16',
];
const READ_SUITES = [
  'Verify10',
  'Verify12',
  'Verify16',
  'GetLBAStatus',
  'Prefetch10',
  'Prefetch16',
  'ReadDefectData10',
  'ReadDefectData12',
  'StartStopUnit',
  'PreventAllow',
  'NoMedia',
  'ReadOnly',
  'Read10',
  'Read12',
  'Read16',
];
const ISCSI_SUITES = ['iSCSIResiduals'];

/** Not passing, with the reason; keyed "Suite.Test". */
const COMMON_KNOWN: Record<string, string> = {};

/** A libiscsi skip this setup gets by design, and the setup that runs the test instead. */
interface BySetup {
  /** The skip message libiscsi prints (matched against the scored detail). */
  skip: RegExp;
  coveredBy: string;
  reason: string;
}

/** Sanitize erase methods on a fully provisioned LU (LBPME = 0, every LBA mapped). */
const NO_ERASE_ON_FULLY_PROVISIONED: Record<string, BySetup> = {
  'Sanitize.BlockErase': {
    skip: /^SANITIZE BLOCK_ERASE is not implemented/,
    coveredBy: 'thin512in4096',
    reason:
      'libiscsi fails BLOCK ERASE on a LU with LBPME = 0 and requires GET LBA STATUS to report every LBA ' +
      'deallocated or anchored after it; a fully provisioned LU has LBPME = 0 and every LBA mapped ' +
      '(SBC-4 4.7.2, 5.21.2), so BLOCK ERASE is offered on thin LUs only',
  },
  'Sanitize.CryptoErase': {
    skip: /^SANITIZE CRYPTO_ERASE is not implemented/,
    coveredBy: 'thin512in4096',
    reason:
      'libiscsi 1.19.0 checks WABEREQ (not WACEREQ) after CRYPTOGRAPHIC ERASE and fails on 00b, while its ' +
      'BlockErase test fails WABEREQ != 00b without BLOCK ERASE: CRYPTOGRAPHIC ERASE can only go with BLOCK ERASE',
  },
  'Sanitize.Readonly': {
    skip: /^SANITIZE BLOCK_ERASE is not implemented/,
    coveredBy: 'thin512in4096',
    reason: 'the OVERWRITE part runs and passes (WRITE PROTECTED under SWP); the erase parts are skipped',
  },
  'Sanitize.Reservations': {
    skip: /^SANITIZE BLOCK_ERASE is not implemented/,
    coveredBy: 'thin512in4096',
    reason: 'the OVERWRITE part runs and passes (RESERVATION CONFLICT); the erase parts are skipped',
  },
};

/** Tests that need LOGICAL BLOCKS PER PHYSICAL BLOCK >= 2 ("[SKIPPED] LBPPB < 2"). */
const NEEDS_LBPPB_2: Record<string, BySetup> = Object.fromEntries(
  [
    'WriteSame10.UnmapUnaligned',
    'WriteSame16.UnmapUnaligned',
    'WriteSame10.InvalidDataOutSize',
    'WriteSame16.InvalidDataOutSize',
    'CompareAndWrite.InvalidDataOutSize',
  ].map((k) => [k, { skip: /^LBPPB < 2/, coveredBy: 'thin512in4096', reason: 'needs LBPPB >= 2' }]),
);

/** A test not run on a setup, and the setup that runs it instead. */
interface Elsewhere {
  coveredBy: string;
  reason: string;
}

/**
 * SCSI.Sanitize.Reset sends SANITIZE OVERWRITE (IMMED = 0) of the whole LU, sleeps 3 s,
 * expects TEST UNIT READY to fail with SANITIZE IN PROGRESS, then sends ABORT TASK,
 * ABORT TASK SET, LOGICAL UNIT RESET, target warm and cold resets, logs in again after
 * 1 s and expects SANITIZE IN PROGRESS still. The sanitize must really last that long:
 * a 16-64 MiB LU is overwritten in milliseconds, so the test runs on the large LU only.
 */
const SANITIZE_RESET_ELSEWHERE: Record<string, Elsewhere> = {
  'Sanitize.Reset': {
    coveredBy: 'sanitizeLarge',
    reason: 'needs a sanitize that is still running 4 s after it started',
  },
};

interface Setup {
  lun: number;
  suites: string[];
  known: Record<string, string>;
  bySetup?: Record<string, BySetup>;
  elsewhere?: Record<string, Elsewhere>;
}

const SETUPS: Record<string, Setup> = {
  ram512: {
    lun: 0,
    suites: [...WRITE_SUITES, ...READ_SUITES, ...ISCSI_SUITES],
    known: COMMON_KNOWN,
    bySetup: NO_ERASE_ON_FULLY_PROVISIONED,
    elsewhere: SANITIZE_RESET_ELSEWHERE,
  },
  file4096: {
    lun: 1,
    suites: [...WRITE_SUITES, ...READ_SUITES, ...ISCSI_SUITES],
    known: COMMON_KNOWN,
    bySetup: NO_ERASE_ON_FULLY_PROVISIONED,
    elsewhere: SANITIZE_RESET_ELSEWHERE,
  },
  // The data-writing suites assume a writable LU: only the read side and ReadOnly here.
  readOnly: { lun: 2, suites: READ_SUITES, known: {} },
  thin512in4096: {
    lun: 3,
    suites: [...WRITE_SUITES, ...READ_SUITES, ...ISCSI_SUITES],
    known: {
      ...COMMON_KNOWN,
      // Its second loop unmaps [0, i) (i a multiple of LBPPB), asks GET LBA STATUS from
      // LBA i + 1 and wants the first descriptor to start at i + LBPPB. Its first loop asks
      // from i + LBPPB and checks for i + LBPPB; the second loop's request was i + 1 before
      // libiscsi commit cefb6a6 made the test LBPPB-aware and 9e75b10 copied the first
      // loop's check into it: with LBPPB = 1 both agree, with LBPPB > 1 they cannot.
      'GetLBAStatus.UnmapSingle':
        'libiscsi (1.19.0 and upstream) asks GET LBA STATUS from LBA i + 1 and wants the first descriptor at ' +
        'i + LBPPB; SBC-4 5.20.2: the LBA STATUS LOGICAL BLOCK ADDRESS of the first descriptor shall be the ' +
        'STARTING LOGICAL BLOCK ADDRESS of the CDB (SBC-3: the first descriptor shall contain it), so for ' +
        'LBPPB > 1 no conforming answer passes. spindle reports LBA i + 1 mapped from i + 1 (its physical ' +
        'block i..i + LBPPB - 1 was never unmapped); the test passes with LBPPB = 1 on thinFile4096',
    },
    elsewhere: SANITIZE_RESET_ELSEWHERE,
  },
  thinFile4096: {
    lun: 4,
    suites: [...WRITE_SUITES, ...READ_SUITES, ...ISCSI_SUITES],
    // LBPPB = 1 here, so GetLBAStatus.UnmapSingle (KNOWN on LUN 3) runs and passes.
    known: COMMON_KNOWN,
    bySetup: NEEDS_LBPPB_2,
    elsewhere: SANITIZE_RESET_ELSEWHERE,
  },
  removable: {
    lun: 5,
    suites: ['StartStopUnit', 'NoMedia'],
    known: {
      // The test sends POWER CONDITION 1h..Fh (LOEJ = 1, START = 0) and wants GOOD for all.
      // SBC-4 5.25 table 94 defines 0h START_VALID, 1h ACTIVE, 2h IDLE, 3h STANDBY,
      // 7h LU_CONTROL, Ah FORCE_IDLE_0, Bh FORCE_STANDBY_0; 5h is obsolete (SBC-2 SLEEP,
      // which only a reset ended); 4h, 6h, 8h, 9h, Ch-Fh are reserved. spindle accepts the
      // seven defined values (ignoring LOEJ, as SBC-4 5.25 requires) and rejects the rest.
      'StartStopUnit.PwrCnd':
        'libiscsi wants GOOD for the reserved POWER CONDITION values 4h, 6h, 8h, 9h, Ch-Fh and the obsolete 5h ' +
        '(tgt accepts any non-zero value unchecked); SPC-4 3.5 keywords: receipt of reserved code values in ' +
        'defined fields shall be reported as an error, so spindle answers ILLEGAL REQUEST / INVALID FIELD IN CDB',
    },
  },
  removablePrevent: {
    lun: 5,
    suites: ['PreventAllow'],
    known: {},
  },
  // A 6 GiB file LU, sparse until written: SANITIZE OVERWRITE writes all of it, one
  // durable 1 MiB chunk at a time, which takes ~10-25 s on the CI machines (its blocks
  // are allocated as they are written). Only SCSI.Sanitize.Reset runs here: it sleeps 60 s
  // once the sanitize has survived the resets, by which time the sanitize is done.
  sanitizeLarge: {
    lun: 6,
    suites: ['Sanitize.Reset'],
    known: {},
  },
};

/** Bytes of disk the large LU's sanitize writes (SETUPS.sanitizeLarge). */
const LARGE_LU_BYTES = 6 * 1024 ** 3;

function yaml(ctx: { port: number; iqn: string; dir: string }): string {
  return `
clusterId: test-sbc
logging: { level: info }
# No NOP-In pings: libiscsi's Sanitize.Reset waits for the end of the sanitize with
# sleep(60) between TEST UNIT READYs, in a single thread that answers nothing meanwhile;
# a ping would time out and drop the session after 45 s, and every reconnect's first TEST
# UNIT READY then reports a unit attention, so the test would loop for ever.
iscsi: { nopIntervalSec: 0 }
# One session worker: PreventAllow.ITNexusLoss drops its connection and logs straight
# back in; with two session workers the new session can land on the other worker and
# reach the LU before the old worker has seen the TCP close (no ordering across rings),
# so the old nexus's PREVENT would still hold. Real initiators reconnect after a delay.
workers: { session: 1, lun: 2 }
devices:
  - name: ram512
    ram: { size: 64MiB }
  - name: file4096
    file: { path: ${ctx.dir}/file4096.img, size: 32MiB }
    blockSize: 4096
  - name: ro
    ram: { size: 16MiB }
    readOnly: true
  - name: thin
    # >= 65536 blocks, so the 4-byte-length WRITE SAME / UNMAP tests run (they skip below).
    ram: { size: 64MiB }
    thin: true
    physicalBlockSize: 4096
  - name: thinfile
    file: { path: ${ctx.dir}/thin.img, size: 32MiB }
    blockSize: 4096
    thin: true
  - name: rmb
    ram: { size: 16MiB }
    removable: true
  - name: large
    file: { path: ${ctx.dir}/large.img, size: ${LARGE_LU_BYTES} }
targets:
  - iqn: ${ctx.iqn}
    portals: ['127.0.0.1:${ctx.port}']
    luns: { 0: ram512, 1: file4096, 2: ro, 3: thin, 4: thinfile, 5: rmb, 6: large }
`;
}

/** Every test of iscsi-test-cu ("SCSI.Sanitize.Reset", ...), from `iscsi-test-cu -l`. */
let allTests: string[] = [];

/**
 * The iscsi-test-cu pattern list of a setup: its suites as "SCSI.<suite>", except that a
 * suite with `elsewhere` tests is spelled out test by test without them.
 */
function testPattern(setup: Setup): string {
  const out: string[] = [];
  const skip = new Set(Object.keys(setup.elsewhere ?? {}).map((k) => `SCSI.${k}`));
  for (const s of setup.suites) {
    const full = s === 'iSCSIResiduals' ? `iSCSI.${s}` : `SCSI.${s}`;
    if (![...skip].some((k) => k.startsWith(`${full}.`))) {
      out.push(full);
      continue;
    }
    const tests = allTests.filter((t) => t.startsWith(`${full}.`) && !skip.has(t));
    expect(tests.length, `no tests of ${full} listed by iscsi-test-cu -l`).toBeGreaterThan(0);
    out.push(...tests);
  }
  return out.join(',');
}

interface Result {
  suite: string;
  test: string;
  result: string;
  detail: string;
}

let t: StartedTarget;
/** Scored results of each setup that has run, for the coverage check of `bySetup`. */
const resultsBySetup = new Map<string, Result[]>();

beforeAll(async () => {
  if (existsSync(TOOL)) {
    const list = await run('iscsi-test-cu', ['-l']);
    allTests = list.stdout.split('\n').map((l) => l.trim()).filter((l) => /^(SCSI|iSCSI)\.\w+\.\w+$/.test(l));
    // The large LU's file starts sparse; its sanitize fills it (SETUPS.sanitizeLarge).
    const fs = statfsSync(os.tmpdir());
    const free = fs.bavail * fs.bsize;
    const need = LARGE_LU_BYTES + 2 * 1024 ** 3;
    if (free < need) {
      throw new Error(`the sanitizeLarge setup needs ${need / 1024 ** 3} GiB free in ${os.tmpdir()}, found ${(free / 1024 ** 3).toFixed(1)} GiB`);
    }
  }
  t = await startTarget({ yaml });
});

afterAll(async () => {
  await t?.stop();
  cleanup(t);
});

describe.skipIf(!existsSync(TOOL))('libiscsi SBC-4 conformance per LUN setup', () => {
  for (const [name, setup] of Object.entries(SETUPS)) {
    it(`${name} (LUN ${setup.lun}): nothing fails or is missing beyond the known list`, async () => {
      const json = path.join(t.dir, `sbc-${name}.json`);
      const tests = testPattern(setup);
      const r = await run(TOOL, ['--tests', tests, '--json', json, '--log', path.join(t.dir, `sbc-${name}.log`), t.url(setup.lun)], 900_000);
      expect(existsSync(json), r.stdout + r.stderr).toBe(true);
      const results = JSON.parse(readFileSync(json, 'utf8')) as Result[];
      resultsBySetup.set(name, results);
      const bySetup = setup.bySetup ?? {};
      // A by-setup entry must be exactly its skip; anything else about it is a failure.
      const wrongSkip = results
        .filter((x) => bySetup[`${x.suite}.${x.test}`] !== undefined)
        .filter((x) => x.result !== 'missing' || !bySetup[`${x.suite}.${x.test}`]!.skip.test(x.detail))
        .map((x) => `${x.suite}.${x.test}: ${x.result} ${x.detail}`);
      expect(wrongSkip, 'by-setup entries must be skipped for their stated reason').toEqual([]);
      const bad = results
        .filter((x) => x.result === 'fail' || x.result === 'missing')
        .map((x) => `${x.suite}.${x.test}`);
      const unexpected = bad.filter((k) => setup.known[k] === undefined && bySetup[k] === undefined);
      expect(unexpected, r.stdout).toEqual([]);
      const nowPassing = Object.keys(setup.known).filter((k) => !bad.includes(k));
      expect(nowPassing, 'known failures that pass now: remove them from KNOWN').toEqual([]);
      const notRun = Object.keys(bySetup).filter((k) => !bad.includes(k));
      expect(notRun, 'by-setup entries that did not come out as their skip').toEqual([]);
      const ranElsewhere = Object.keys(setup.elsewhere ?? {}).filter((k) => results.some((x) => `${x.suite}.${x.test}` === k));
      expect(ranElsewhere, 'tests meant for another setup ran here').toEqual([]);
      for (const entry of setup.suites) {
        // "Suite" or "Suite.Test".
        const [suite, test] = entry.split('.');
        const ran = results.filter((x) => x.suite === suite && (test === undefined || x.test === test));
        expect(ran.length, `${entry} did not run:\n${r.stdout}`).toBeGreaterThan(0);
        // A suite whose every test is a setup skip (e.g. PreventAllow on a fixed disk) is fine.
        if (ran.every((x) => x.result === 'config')) continue;
        expect(ran.some((x) => x.result === 'pass'), `${entry} passed nothing:\n${r.stdout}`).toBe(true);
      }
    }, 900_000);
  }

  it('every by-setup skip and every test run elsewhere passes on the setup that covers it', () => {
    const uncovered: string[] = [];
    for (const [name, setup] of Object.entries(SETUPS)) {
      for (const [key, entry] of Object.entries({ ...setup.bySetup, ...setup.elsewhere })) {
        const results = resultsBySetup.get(entry.coveredBy);
        const r = results?.find((x) => `${x.suite}.${x.test}` === key);
        if (r?.result !== 'pass') uncovered.push(`${name}: ${key} is ${r?.result ?? 'not run'} on ${entry.coveredBy}`);
      }
    }
    expect(uncovered).toEqual([]);
  });
});
