/**
 * PR test helpers: a LU exported through target ports 1 and 2 with a directory of four
 * I_T nexuses, and PR OUT / IN builders.
 */
import type { NexusInfo } from '../../../../src/workers/lun/nexus.ts';
import { initiatorPortName, nexusKey } from '../../../../src/workers/lun/nexus.ts';
import type { LogicalUnit } from '../../../../src/workers/lun/logical-unit.ts';
import { LogicalUnit as LU } from '../../../../src/workers/lun/logical-unit.ts';
import { PortGroupTable } from '../../../../src/workers/lun/alua/port-groups.ts';
import { CLUSTER, TEST_ENV, makeCommand, ramDevice, run, type TestCommand } from '../helpers.ts';

export function nexusInfo(id: number, initiatorName: string, isid: string, rtpi: number): NexusInfo {
  const initiatorPort = initiatorPortName(initiatorName, isid);
  return {
    id,
    initiatorName,
    isid,
    initiatorPort,
    targetName: 'iqn.2026-11.io.spindle:t',
    relativeTargetPortId: rtpi,
    targetPortGroup: rtpi,
    key: nexusKey(initiatorPort, rtpi),
  };
}

/** Handles 1-4: A (port 1), B (port 1), C (port 1), A again through target port 2. */
export const NEXUSES: Record<number, NexusInfo> = {
  1: nexusInfo(1, 'iqn.2026-11.test:a', '400000000001', 1),
  2: nexusInfo(2, 'iqn.2026-11.test:b', '400000000002', 1),
  3: nexusInfo(3, 'iqn.2026-11.test:c', '400000000003', 1),
  4: nexusInfo(4, 'iqn.2026-11.test:a', '400000000001', 2),
};

export async function openPrLu(stateDir?: string): Promise<LogicalUnit> {
  const lu = await LU.open(ramDevice({}, 64), stateDir === undefined ? CLUSTER : { ...CLUSTER, stateDir }, TEST_ENV);
  lu.nexuses = { get: (id) => NEXUSES[id] };
  // Exported through target ports 1 and 2 (one port group each, as one portal each).
  new PortGroupTable({
    implicitTransitionSec: 0,
    groups: [
      { id: 1, relativeTargetPortIds: [1] },
      { id: 2, relativeTargetPortIds: [2] },
    ],
  }).attach(lu);
  // Make every nexus known to the LU (unit attentions queue for known nexuses only).
  for (const n of [1, 2, 3, 4]) await tur(lu, n);
  return lu;
}

export function key(n: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

export interface ProutOpts {
  key?: number | bigint;
  saKey?: number | bigint;
  type?: number;
  scope?: number;
  /** Byte 20 of the parameter list (SPEC_I_PT 8, ALL_TG_PT 4, APTPL 1). */
  flags?: number;
  transportIds?: Buffer[];
  /** Override the PARAMETER LIST LENGTH. */
  paramLength?: number;
  /** Send these bytes as the parameter list. */
  raw?: Buffer;
}

export function proutParams(o: ProutOpts): Buffer {
  const tids = o.transportIds ?? [];
  const tidBytes = Buffer.concat(tids);
  const spec = ((o.flags ?? 0) & 0x08) !== 0;
  const p = Buffer.alloc(spec ? 28 + tidBytes.length : 24);
  key(o.key ?? 0).copy(p, 0);
  key(o.saKey ?? 0).copy(p, 8);
  p[20] = o.flags ?? 0;
  if (spec) {
    p.writeUInt32BE(tidBytes.length, 24);
    tidBytes.copy(p, 28);
  }
  return p;
}

export function proutCdb(sa: number, type: number, scope: number, paramLength: number): number[] {
  const c = Buffer.alloc(10);
  c[0] = 0x5f;
  c[1] = sa;
  c[2] = (scope << 4) | type;
  c.writeUInt32BE(paramLength, 5);
  return [...c];
}

export async function prout(lu: LogicalUnit, nexus: number, sa: number, o: ProutOpts = {}): Promise<TestCommand> {
  const p = o.raw ?? proutParams(o);
  const cmd = makeCommand(proutCdb(sa, o.type ?? 0, o.scope ?? 0, o.paramLength ?? p.length), { dataOut: p });
  cmd.nexus = nexus;
  return run(lu, cmd);
}

/** REGISTER AND MOVE parameter list (SPC-4 6.16.4). */
export function moveParams(k: number, saKey: number, rtpi: number, tid: Buffer, flags = 0): Buffer {
  const p = Buffer.alloc(24 + tid.length);
  key(k).copy(p, 0);
  key(saKey).copy(p, 8);
  p[17] = flags;
  p.writeUInt16BE(rtpi, 18);
  p.writeUInt32BE(tid.length, 20);
  tid.copy(p, 24);
  return p;
}

export async function prin(lu: LogicalUnit, nexus: number, sa: number, alloc = 4096): Promise<TestCommand> {
  const c = Buffer.alloc(10);
  c[0] = 0x5e;
  c[1] = sa;
  c.writeUInt16BE(alloc, 7);
  const cmd = makeCommand([...c], { dataLength: alloc });
  cmd.nexus = nexus;
  return run(lu, cmd);
}

export async function tur(lu: LogicalUnit, nexus: number): Promise<TestCommand> {
  const cmd = makeCommand([0, 0, 0, 0, 0, 0]);
  cmd.nexus = nexus;
  return run(lu, cmd);
}

export async function cmdAs(lu: LogicalUnit, nexus: number, cdb: number[], opts: { dataLength?: number; dataOut?: Buffer } = {}): Promise<TestCommand> {
  const cmd = makeCommand(cdb, opts);
  cmd.nexus = nexus;
  return run(lu, cmd);
}

/** Keys reported by READ KEYS, and the PRgeneration. */
export async function readKeys(lu: LogicalUnit, nexus = 1): Promise<{ generation: number; keys: bigint[] }> {
  const c = await prin(lu, nexus, 0);
  const d = c.dataIn;
  const n = d.readUInt32BE(4) / 8;
  const keys: bigint[] = [];
  for (let i = 0; i < n; i++) keys.push(d.readBigUInt64BE(8 + 8 * i));
  return { generation: d.readUInt32BE(0), keys };
}

/** iSCSI TransportID (SPC-4 7.6.4.6) built by hand for the tests. */
export function tid(name: string, isid?: string): Buffer {
  const text = isid === undefined ? name : `${name},i,0x${isid}`;
  const body = Math.max(20, (Buffer.byteLength(text) + 1 + 3) & ~3);
  const b = Buffer.alloc(4 + body);
  b[0] = (isid === undefined ? 0x00 : 0x40) | 0x05;
  b.writeUInt16BE(body, 2);
  b.write(text, 4);
  return b;
}
