/**
 * The SBC-4 half of the libiscsi conformance suite (iscsi-test-cu, scored by
 * shared/tools/iscsi-conformance), run against one LUN per device setup: plain RAM,
 * a 4096-byte file device, a read-only device, a thin device (512-byte logical blocks
 * in 4096-byte physical blocks), a thin file device and a removable device.
 *
 * Every test must pass or be skipped for the LUN's setup ("config"), except:
 * - the entries of KNOWN, each with the reason it cannot pass yet; a KNOWN entry that
 *   starts passing fails this test too, so the list only shrinks;
 * - the entries of `bySetup`: tests that libiscsi skips because the LU, by its
 *   configuration, does not offer what the test needs, with a skip message the scoring
 *   tool counts as "missing". Each must be exactly that skip (never a failure, never
 *   another skip reason), and must pass on the setup named in `coveredBy`, so nothing
 *   goes untested.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
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

/** Not passing yet, with the reason; keyed "Suite.Test". */
const COMMON_KNOWN: Record<string, string> = {
  'Sanitize.Reset':
    'sends SANITIZE OVERWRITE of the whole LU, sleeps 3 s and expects TEST UNIT READY to fail with ' +
    'SANITIZE IN PROGRESS, then again after ABORT TASK, LUN/target resets and a re-login (> 4 s in all); ' +
    'the 16-64 MiB test LUs are overwritten in well under a second, and spindle does not slow a sanitize down artificially',
};

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

interface Setup {
  lun: number;
  suites: string[];
  known: Record<string, string>;
  bySetup?: Record<string, BySetup>;
}

const SETUPS: Record<string, Setup> = {
  ram512: {
    lun: 0,
    suites: [...WRITE_SUITES, ...READ_SUITES, ...ISCSI_SUITES],
    known: COMMON_KNOWN,
    bySetup: NO_ERASE_ON_FULLY_PROVISIONED,
  },
  file4096: {
    lun: 1,
    suites: [...WRITE_SUITES, ...READ_SUITES, ...ISCSI_SUITES],
    known: COMMON_KNOWN,
    bySetup: NO_ERASE_ON_FULLY_PROVISIONED,
  },
  // The data-writing suites assume a writable LU: only the read side and ReadOnly here.
  readOnly: { lun: 2, suites: READ_SUITES, known: {} },
  thin512in4096: {
    lun: 3,
    suites: [...WRITE_SUITES, ...READ_SUITES, ...ISCSI_SUITES],
    known: {
      ...COMMON_KNOWN,
      // Its second loop unmaps [0, i) (i a multiple of LBPPB), asks from LBA i + 1 and wants
      // the first descriptor at i + LBPPB: an extent that does not contain i + 1 when LBPPB > 1.
      'GetLBAStatus.UnmapSingle':
        'libiscsi (1.19.0 and upstream) wants the first descriptor at LBA i + LBPPB when asked from i + 1; ' +
        'SBC-4 5.20.2: the first LBA status descriptor shall contain the STARTING LOGICAL BLOCK ADDRESS, ' +
        'so for LBPPB > 1 no conforming answer passes (spindle starts it at i + 1; passes with LBPPB = 1, LUN 4)',
    },
  },
  thinFile4096: {
    lun: 4,
    suites: [...WRITE_SUITES, ...READ_SUITES, ...ISCSI_SUITES],
    // LBPPB = 1 here, so GetLBAStatus.UnmapSingle (KNOWN on LUN 3) runs and passes.
    known: COMMON_KNOWN,
    bySetup: NEEDS_LBPPB_2,
  },
  removable: {
    lun: 5,
    suites: ['StartStopUnit', 'NoMedia'],
    known: {
      // The test sends POWER CONDITION 1h..Fh and wants GOOD for all; spindle accepts every
      // value SBC-4 5.25 table 94 defines (1h-3h, 7h, Ah, Bh) and fails only the nine others.
      'StartStopUnit.PwrCnd':
        'libiscsi wants GOOD for the reserved POWER CONDITION values 4h, 6h, 8h, 9h, Ch-Fh and the obsolete 5h; ' +
        'SPC-4 3.4 (keywords, "reserved"): receipt of reserved code values in defined fields shall be reported ' +
        'as an error, so spindle answers ILLEGAL REQUEST / INVALID FIELD IN CDB',
    },
  },
  removablePrevent: {
    lun: 5,
    suites: ['PreventAllow'],
    known: {},
  },
};

function yaml(ctx: { port: number; iqn: string; dir: string }): string {
  return `
clusterId: test-sbc
logging: { level: info }
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
targets:
  - iqn: ${ctx.iqn}
    portals: ['127.0.0.1:${ctx.port}']
    luns: { 0: ram512, 1: file4096, 2: ro, 3: thin, 4: thinfile, 5: rmb }
`;
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
      const tests = setup.suites.map((s) => (s === 'iSCSIResiduals' ? `iSCSI.${s}` : `SCSI.${s}`)).join(',');
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
      for (const suite of setup.suites) {
        const ran = results.filter((x) => x.suite === suite);
        expect(ran.length, `suite ${suite} did not run:\n${r.stdout}`).toBeGreaterThan(0);
        // A suite whose every test is a setup skip (e.g. PreventAllow on a fixed disk) is fine.
        if (ran.every((x) => x.result === 'config')) continue;
        expect(ran.some((x) => x.result === 'pass'), `${suite} passed nothing:\n${r.stdout}`).toBe(true);
      }
    }, 900_000);
  }

  it('every by-setup skip passes on the setup that covers it', () => {
    const uncovered: string[] = [];
    for (const [name, setup] of Object.entries(SETUPS)) {
      for (const [key, entry] of Object.entries(setup.bySetup ?? {})) {
        const results = resultsBySetup.get(entry.coveredBy);
        const r = results?.find((x) => `${x.suite}.${x.test}` === key);
        if (r?.result !== 'pass') uncovered.push(`${name}: ${key} is ${r?.result ?? 'not run'} on ${entry.coveredBy}`);
      }
    }
    expect(uncovered).toEqual([]);
  });
});
