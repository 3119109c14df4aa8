/**
 * LUN masking and ALUA on one node (issue 5), against the real target: one target on two
 * portals with ACLs. Initiator A sees LUNs {0, 1}, initiator B sees {0} mapped to another
 * device, initiator C is refused at login with AUTHORIZATION FAILURE (RFC 7143 11.13.5)
 * and does not see the target in discovery. Each portal is its own target port group:
 * VPD 83h and REPORT TARGET PORT GROUPS are checked through both. libiscsi (iscsi-ls,
 * iscsi-inq with -i) plays the real initiator.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, freePort, startWithConfig, type StartedTarget } from '../helpers/target.ts';
import { Initiator, Status, connectAndLogin, inquiry, parseTextPairs } from '../helpers/initiator.ts';

const run = promisify(execFile);

const IQN = 'iqn.2026-11.io.spindle:acl';
const OTHER = 'iqn.2026-11.io.spindle:open';
const A = 'iqn.1994-05.com.redhat:host-a';
const B = 'iqn.2026-11.io.spindle:group-b1';
const C = 'iqn.1993-08.org.debian:01:host-c';

let t: StartedTarget;
let port1: number;
let port2: number;

beforeAll(async () => {
  port1 = await freePort();
  port2 = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'spindle-acl-'));
  const cfg = path.join(dir, 'spindle.yaml');
  writeFileSync(
    cfg,
    `
clusterId: test
workers: { session: 2, lun: 2 }
devices:
  - { name: d0, ram: { size: 8MiB }, serial: SER-D0 }
  - { name: d1, ram: { size: 8MiB }, serial: SER-D1 }
  - { name: d2, ram: { size: 8MiB }, serial: SER-D2 }
targets:
  - iqn: ${IQN}
    portals: ['127.0.0.1:${port1}', '127.0.0.1:${port2}']
    acls:
      - { initiator: ${A}, luns: { 0: d0, 1: d1 } }
      - { initiators: ['iqn.2026-11.io.spindle:group-*'], luns: { 0: d2 } }
  - iqn: ${OTHER}
    portals: ['127.0.0.1:${port1}']
    luns: { 0: d1 }
`,
  );
  t = await startWithConfig(cfg, { port: port1, iqn: IQN, dir });
}, 40_000);

afterAll(async () => {
  await t?.stop();
  cleanup(t);
});

async function session(name: string, port = port1): Promise<Initiator> {
  return connectAndLogin(port, IQN, { initiatorName: name, keys: [['MaxRecvDataSegmentLength', '65536']] });
}

function reportLuns(): Buffer {
  const c = Buffer.alloc(12);
  c[0] = 0xa0;
  c.writeUInt32BE(4096, 6);
  return c;
}

function vpd(page: number, alloc = 1024): Buffer {
  const c = inquiry(alloc);
  c[1] = 1;
  c[2] = page;
  return c;
}

function rtpg(extended: boolean): Buffer {
  const c = Buffer.alloc(12);
  c[0] = 0xa3;
  c[1] = (extended ? 0x20 : 0) | 0x0a;
  c.writeUInt32BE(1024, 6);
  return c;
}

async function lunsOf(ini: Initiator): Promise<number[]> {
  const r = await ini.scsi(reportLuns(), { read: true, edtl: 4096 });
  expect(r.status).toBe(Status.GOOD);
  const n = r.data.readUInt32BE(0) / 8;
  return Array.from({ length: n }, (_, i) => r.data.readUInt16BE(8 + 8 * i) & 0x3fff);
}

async function serialOf(ini: Initiator, lun: number): Promise<string> {
  const r = await ini.scsi(vpd(0x80, 255), { read: true, edtl: 255, lun });
  expect(r.status).toBe(Status.GOOD);
  return r.data.subarray(4, 4 + r.data.readUInt16BE(2)).toString('latin1');
}

describe('LUN masking', () => {
  it('initiator A sees LUNs 0 and 1 (devices d0, d1)', async () => {
    const ini = await session(A);
    try {
      expect(await lunsOf(ini)).toEqual([0, 1]);
      expect(await serialOf(ini, 0)).toBe('SER-D0');
      expect(await serialOf(ini, 1)).toBe('SER-D1');
    } finally {
      ini.close();
    }
  });

  it('initiator B (pattern entry) sees only LUN 0, mapped to d2', async () => {
    const ini = await session(B, port2);
    try {
      expect(await lunsOf(ini)).toEqual([0]);
      expect(await serialOf(ini, 0)).toBe('SER-D2');
      const r = await ini.scsi(inquiry(96), { read: true, edtl: 96, lun: 1 });
      // SPC-4 6.6.2: PERIPHERAL QUALIFIER 011b for a LUN this nexus cannot reach, or
      // CHECK CONDITION / LOGICAL UNIT NOT SUPPORTED for other commands.
      if (r.status === Status.GOOD) expect(r.data[0]! >> 5).toBe(0b011);
      const tur = await ini.scsi(Buffer.alloc(6), { edtl: 0, lun: 1 });
      expect(tur.status).toBe(Status.CHECK_CONDITION);
      expect([tur.sense[2]! & 0x0f, tur.sense[12], tur.sense[13]]).toEqual([0x5, 0x25, 0x00]);
    } finally {
      ini.close();
    }
  });

  it('initiator C is refused at login with AUTHORIZATION FAILURE (class 2, detail 2)', async () => {
    for (const port of [port1, port2]) {
      const ini = await Initiator.connect(port);
      try {
        const r = await ini.login({ initiatorName: C, targetName: IQN });
        expect(r.ok).toBe(false);
        expect([r.statusClass, r.statusDetail]).toEqual([2, 2]);
      } finally {
        ini.close();
      }
    }
    // An unmasked target on the same portal still admits C.
    const open = await connectAndLogin(port1, OTHER, { initiatorName: C });
    open.close();
  });

  it('SendTargets lists the masked target only to initiators it admits', async () => {
    const discover = async (name: string): Promise<Array<[string, string]>> => {
      const ini = await Initiator.connect(port1);
      try {
        const r = await ini.login({ initiatorName: name, sessionType: 'Discovery' });
        expect(r.ok).toBe(true);
        return parseTextPairs((await ini.text({ SendTargets: 'All' })).data);
      } finally {
        ini.close();
      }
    };
    const forA = await discover(A);
    expect(
      forA
        .filter(([k]) => k === 'TargetName')
        .map(([, v]) => v)
        .sort(),
    ).toEqual([IQN, OTHER].sort());
    expect(forA.filter(([k]) => k === 'TargetAddress').map(([, v]) => v)).toEqual(
      expect.arrayContaining([`127.0.0.1:${port1},1`, `127.0.0.1:${port2},2`]),
    );
    const forC = await discover(C);
    expect(forC.filter(([k]) => k === 'TargetName').map(([, v]) => v)).toEqual([OTHER]);
  });

  it('libiscsi: iscsi-ls / iscsi-inq with -i see what each initiator may', async () => {
    const ls = async (name: string) =>
      (await run('iscsi-ls', ['-i', name, '-s', `iscsi://127.0.0.1:${port1}`])).stdout;
    const forA = await ls(A);
    expect(forA).toContain(IQN);
    expect(forA).toMatch(/Lun:1/);
    const forB = await ls(B);
    expect(forB).toContain(IQN);
    expect(forB).not.toMatch(new RegExp(`${IQN.replace(/\./g, '\\.')}[\\s\\S]*Lun:1`));
    expect(await ls(C)).not.toContain(IQN);
    const inq = await run('iscsi-inq', ['-i', A, `iscsi://127.0.0.1:${port2}/${IQN}/1`]);
    expect(inq.stdout).toMatch(/SPINDLE/);
    await expect(run('iscsi-inq', ['-i', C, `iscsi://127.0.0.1:${port2}/${IQN}/0`])).rejects.toThrow();
  });
});

describe('ALUA on one node', () => {
  it('standard INQUIRY reports TPGS = 11b (implicit and explicit ALUA, SET TARGET PORT GROUPS) and MULTIP', async () => {
    const ini = await session(A);
    try {
      const r = await ini.scsi(inquiry(96), { read: true, edtl: 96 });
      expect((r.data[5]! >> 4) & 0x03).toBe(0b11);
      expect(r.data[6]! & 0x10).toBe(0x10);
    } finally {
      ini.close();
    }
  });

  for (const which of [1, 2] as const) {
    it(`VPD 83h through portal ${which} names that target port and its group`, async () => {
      const ini = await session(A, which === 1 ? port1 : port2);
      try {
        const r = await ini.scsi(vpd(0x83), { read: true, edtl: 1024 });
        expect(r.status).toBe(Status.GOOD);
        const d = designators(r.data);
        const find = (assoc: number, type: number) => d.find((x) => x.assoc === assoc && x.type === type)!;
        expect(find(1, 4).value.readUInt16BE(2)).toBe(which); // relative target port
        expect(find(1, 5).value.readUInt16BE(2)).toBe(which); // target port group
        expect(cstr(find(1, 8).value)).toBe(`${IQN},t,0x000${which}`); // SCSI target port name
        expect(cstr(find(2, 8).value)).toBe(IQN); // SCSI target device name
        expect(find(0, 3).value.length).toBe(16); // the NAA LU designator is unchanged
      } finally {
        ini.close();
      }
    });

    it(`REPORT TARGET PORT GROUPS through portal ${which} lists both groups, active/optimized`, async () => {
      const ini = await session(A, which === 1 ? port1 : port2);
      try {
        for (const extended of [false, true]) {
          const r = await ini.scsi(rtpg(extended), { read: true, edtl: 1024 });
          expect(r.status).toBe(Status.GOOD);
          const d = r.data;
          expect(d.readUInt32BE(0) + 4).toBe(d.length);
          let p = 4;
          if (extended) {
            expect((d[4]! >> 4) & 0x07).toBe(1); // FORMAT TYPE 001b
            expect(d[5]).toBe(30); // IMPLICIT TRANSITION TIME
            p = 8;
          }
          const groups: Array<{ id: number; state: number; ports: number[] }> = [];
          while (p < d.length) {
            const count = d[p + 7]!;
            const ports = Array.from({ length: count }, (_, k) => d.readUInt16BE(p + 8 + 4 * k + 2));
            groups.push({ id: d.readUInt16BE(p + 2), state: d[p]! & 0x0f, ports });
            p += 8 + 4 * count;
          }
          expect(groups).toEqual([
            { id: 1, state: 0, ports: [1] },
            { id: 2, state: 0, ports: [2] },
          ]);
        }
      } finally {
        ini.close();
      }
    });
  }
});

function cstr(b: Buffer): string {
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString('utf8');
}

function designators(page: Buffer): Array<{ assoc: number; type: number; value: Buffer }> {
  const out = [];
  const end = 4 + page.readUInt16BE(2);
  for (let p = 4; p < end; p += 4 + page[p + 3]!) {
    out.push({
      assoc: (page[p + 1]! >> 4) & 0x03,
      type: page[p + 1]! & 0x0f,
      value: page.subarray(p + 4, p + 4 + page[p + 3]!),
    });
  }
  return out;
}
