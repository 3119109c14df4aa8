import type { IscsiTuning } from '../../../../src/shared/config-types.ts';
import type { TextPair } from '../../../../src/shared/iscsi/text-keys.ts';
import { parseTextKeys } from '../../../../src/shared/iscsi/text-keys.ts';

export const tuning: IscsiTuning = {
  maxRecvDataSegmentLength: 262144,
  maxBurstLength: 1048576,
  firstBurstLength: 262144,
  maxOutstandingR2T: 8,
  maxTransferLength: 8 * 1048576,
  maxConnectionsPerPortal: 64,
  loginTimeoutSec: 15,
  nopIntervalSec: 30,
  nopTimeoutSec: 15,
  maxSessionsPerTarget: 256,
  authBackoffMaxSec: 30,
};

export const pairs = (o: Record<string, string>): TextPair[] =>
  Object.entries(o).map(([key, value]) => ({ key, value }));

/** Decode response text data into a Map (test-side, asserts well-formedness). */
export function keysOf(data: Buffer): Map<string, string> {
  const r = parseTextKeys(data);
  if (!r.ok) throw new Error(`bad response text: ${r.error}`);
  return new Map(r.pairs.map((p) => [p.key, p.value]));
}
