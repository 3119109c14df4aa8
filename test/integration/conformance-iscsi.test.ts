/**
 * The iSCSI family of the libiscsi conformance suite (iSCSIcmdsn, iSCSIdatasn,
 * iSCSIResiduals, iSCSITMF) must pass with nothing failed or missing.
 *
 * The target runs with `iscsi: { immediateData: false, initialR2T: true }`.
 * iSCSIDataSnInvalid checks that Data-Out PDUs with wrong DataSNs fail the command; it
 * asks libiscsi not to use immediate data, but after the test's deliberate connection
 * drop libiscsi reconnects with a fresh context that forgets that wish (lib/connect.c
 * does not copy use_immediate_data), so with ImmediateData=Yes its next WRITE carries
 * the data inline and there is no Data-Out to check. AbortTaskSimpleAsync, on the other
 * hand, asserts that a WRITE leaves exactly one PDU in libiscsi's out-queue, which is
 * false with unsolicited Data-Out (InitialR2T=No). ImmediateData=No with InitialR2T=Yes
 * satisfies both: the command travels alone and its data follows an R2T. With the
 * defaults (Yes / No) every test but the reconnect case of iSCSIDataSnInvalid passes.
 *
 * No target behaviour makes that case pass with ImmediateData=Yes (checked against
 * libiscsi 1.19): after the first subtest's drop, `iscsi_set_noautoreconnect(0)` starts
 * the reconnect, the test then sets use_immediate_data=NO and a 512-byte
 * target_max_recv_data_segment_length on the new context, but the reconnect's Login
 * Response overwrites both (ImmediateData=Yes as negotiated; MaxRecvDataSegmentLength as
 * declared). The DataSN==27 subtest writes one 512-byte block, which then travels as
 * immediate data: no Data-Out exists whose DataSN could be wrong. Even a target that
 * did not declare MaxRecvDataSegmentLength would get the whole block as immediate data
 * (512 is the smallest allowed value, RFC 7143 13.12). The DataSN==-1 subtest passes
 * with the defaults only because no reconnect precedes it.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import { cleanup, ramDiskYaml, startTarget, type StartedTarget } from '../helpers/target.ts';
import { expectConformance, haveConformanceTool, runConformance } from '../helpers/conformance.ts';

let t: StartedTarget;

beforeAll(async () => {
  t = await startTarget({
    yaml: ramDiskYaml(
      `
iscsi: { immediateData: false, initialR2T: true }
`,
      '64MiB',
    ),
  });
});

afterAll(async () => {
  await t?.stop();
  cleanup(t);
});

describe.skipIf(!haveConformanceTool)('libiscsi conformance: iSCSI family', () => {
  it('every iSCSI-family test passes', async () => {
    const c = await runConformance(t.dir, 'iscsi', 'iSCSI', [t.url(0)]);
    expectConformance(c, ['iSCSIcmdsn', 'iSCSIdatasn', 'iSCSIResiduals', 'iSCSITMF']);
  });
});
