/**
 * Reservations in the libiscsi conformance suite (iscsi-test-cu, scored by
 * shared/tools/iscsi-conformance): persistent reservations, SPC-2 RESERVE/RELEASE and
 * multipath I/O, against one LUN reached through two portals of one target (two target
 * ports, so two I_T nexuses per initiator; iscsi-test-cu logs in with two initiator
 * names for its second device).
 *
 * Every test must pass, except the entries of KNOWN, each with the reason it cannot pass
 * yet; a KNOWN entry that starts passing fails this test too, so the list only shrinks.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import { cleanup, freePort, startTarget, type StartedTarget } from '../helpers/target.ts';
import { expectConformance, haveConformanceTool, runConformance } from '../helpers/conformance.ts';

const SUITES = [
  'PrinReadKeys',
  'PrinServiceactionRange',
  'PrinReportCapabilities',
  'ProutRegister',
  'ProutReserve',
  'ProutClear',
  'ProutPreempt',
  'Reserve6',
  'MultipathIO',
];

/** Not passing yet, with the reason; keyed "Suite.Test". */
const KNOWN: Record<string, string> = {};

let t: StartedTarget;
let port2 = 0;

beforeAll(async () => {
  port2 = await freePort();
  t = await startTarget({
    yaml: ({ port, iqn, dir }) => `
clusterId: test
stateDir: ${dir}/state
logging: { level: info }
workers: { session: 2, lun: 1 }
devices:
  - name: ram0
    ram: { size: 64MiB }
targets:
  - iqn: ${iqn}
    portals: ['127.0.0.1:${port}', '127.0.0.1:${port2}']
    luns: { 0: ram0 }
`,
  });
});

afterAll(async () => {
  await t?.stop();
  cleanup(t);
});

describe.skipIf(!haveConformanceTool)('libiscsi conformance: reservations and multipath', () => {
  it('every test passes, apart from the known ones', async () => {
    const second = `iscsi://127.0.0.1:${port2}/${t.iqn}/0`;
    const pattern = SUITES.map((s) => `SCSI.${s}`).join(',');
    const c = await runConformance(t.dir, 'conformance-pr', pattern, [t.url(0), second]);
    expectConformance(c, SUITES, KNOWN);
  });
});
