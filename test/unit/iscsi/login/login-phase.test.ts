import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildTextKeys } from '../../../../src/shared/iscsi/text-keys.ts';
import {
  LoginLimits,
  LoginPhase,
  LoginStatus,
} from '../../../../src/workers/session/iscsi/login/login-phase.ts';
import type {
  LoginContext,
  LoginRequest,
  LoginStepResult,
  LoginTargetInfo,
} from '../../../../src/workers/session/iscsi/login/types.ts';
import { keysOf, tuning } from './helpers.ts';

const TARGET = 'iqn.2024-01.io.spindle:disk1';
const SECURE = 'iqn.2024-01.io.spindle:secure';
const INITIATOR = 'iqn.1993-08.org.debian:01:cafe';
const SECRET = 'initiator-secret-1';

const targets: LoginTargetInfo[] = [
  { iqn: TARGET, alias: 'disk one', portalGroupTag: 1, addresses: ['192.0.2.10:3260,1'] },
  {
    iqn: SECURE,
    portalGroupTag: 1,
    addresses: ['192.0.2.10:3260,1'],
    auth: { chap: { user: 'alice', secret: SECRET } },
  },
];

interface Logged {
  level: 'info' | 'warn';
  obj: object;
  msg: string;
}

function context(over: Partial<LoginContext> = {}): { ctx: LoginContext; logs: Logged[] } {
  const logs: Logged[] = [];
  let tsih = 0x100;
  const ctx: LoginContext = {
    targets,
    portalGroupTag: 1,
    tuning,
    allocTsih: () => ++tsih,
    peer: '198.51.100.7:40000',
    log: {
      info: (obj, msg) => logs.push({ level: 'info', obj, msg }),
      warn: (obj, msg) => logs.push({ level: 'warn', obj, msg }),
    },
    ...over,
  };
  return { ctx, logs };
}

const ISID = Buffer.from([0x00, 0x02, 0x3d, 0x00, 0x00, 0x01]);

function req(
  csg: number,
  nsg: number,
  transit: boolean,
  keys: Record<string, string> | Buffer,
  over: Partial<LoginRequest> = {},
): LoginRequest {
  return {
    transit,
    cont: false,
    csg,
    nsg: transit ? nsg : 0,
    versionMax: 0,
    versionMin: 0,
    isid: ISID,
    tsih: 0,
    itt: 1,
    cid: 0,
    cmdSN: 1,
    expStatSN: 0,
    data: Buffer.isBuffer(keys) ? keys : buildTextKeys(Object.entries(keys)),
    ...over,
  };
}

function expectOk(
  r: LoginStepResult,
  shape: { transit: boolean; csg: number; nsg: number },
): Map<string, string> {
  expect(r.failed).toBe(false);
  expect(r.response.statusClass).toBe(0);
  expect(r.response.statusDetail).toBe(0);
  expect(r.response.cont).toBe(false);
  expect({ transit: r.response.transit, csg: r.response.csg, nsg: r.response.nsg }).toEqual(shape);
  return keysOf(r.response.data);
}

function expectFail(r: LoginStepResult, status: { statusClass: number; statusDetail: number }): void {
  expect(r.failed).toBe(true);
  expect(r.complete).toBe(false);
  expect({ statusClass: r.response.statusClass, statusDetail: r.response.statusDetail }).toEqual(status);
  expect(r.response.transit).toBe(false);
  expect(r.response.tsih).toBe(0);
}

/** Exactly what Linux open-iscsi (iscsid) offers in its operational stage by default. */
const OPEN_ISCSI_OPERATIONAL = {
  HeaderDigest: 'None',
  DataDigest: 'None',
  DefaultTime2Wait: '2',
  DefaultTime2Retain: '0',
  IFMarker: 'No',
  OFMarker: 'No',
  ErrorRecoveryLevel: '0',
  InitialR2T: 'No',
  ImmediateData: 'Yes',
  MaxBurstLength: '16776192',
  FirstBurstLength: '262144',
  MaxOutstandingR2T: '1',
  MaxConnections: '1',
  DataPDUInOrder: 'Yes',
  DataSequenceInOrder: 'Yes',
  MaxRecvDataSegmentLength: '262144',
};

/** What libiscsi (lib/login.c, default settings) sends in its operational stage. */
const LIBISCSI_OPERATIONAL = {
  HeaderDigest: 'None,CRC32C',
  DataDigest: 'None',
  InitialR2T: 'No',
  ImmediateData: 'Yes',
  MaxBurstLength: '262144',
  FirstBurstLength: '262144',
  DefaultTime2Wait: '2',
  DefaultTime2Retain: '0',
  MaxOutstandingR2T: '1',
  ErrorRecoveryLevel: '0',
  IFMarker: 'No',
  OFMarker: 'No',
  MaxConnections: '1',
  MaxRecvDataSegmentLength: '262144',
  DataPDUInOrder: 'Yes',
  DataSequenceInOrder: 'Yes',
};

const md5hex = (id: number, secret: string, challenge: Buffer): string =>
  createHash('md5')
    .update(Buffer.concat([Buffer.of(id), Buffer.from(secret), challenge]))
    .digest('hex');

/** Answer the target's CHAP challenge the way an initiator does. */
function chapResponse(keys: Map<string, string>, secret: string): string {
  const id = Number(keys.get('CHAP_I'));
  const challenge = Buffer.from(keys.get('CHAP_C')!.slice(2), 'hex');
  return `0x${md5hex(id, secret, challenge)}`;
}

describe('LoginPhase: open-iscsi sequences', () => {
  it('normal session without auth: security (AuthMethod=None) then operational', () => {
    const { ctx, logs } = context();
    const login = new LoginPhase(ctx);
    const r1 = login.step(
      req(0, 1, true, {
        InitiatorName: INITIATOR,
        InitiatorAlias: 'host1',
        TargetName: TARGET,
        SessionType: 'Normal',
        AuthMethod: 'None',
      }),
    );
    const k1 = expectOk(r1, { transit: true, csg: 0, nsg: 1 });
    expect(k1).toEqual(
      new Map([
        ['TargetAlias', 'disk one'],
        ['TargetPortalGroupTag', '1'],
        ['AuthMethod', 'None'],
      ]),
    );
    expect(r1.response.tsih).toBe(0);
    expect(r1.complete).toBe(false);

    const r2 = login.step(req(1, 3, true, OPEN_ISCSI_OPERATIONAL));
    const k2 = expectOk(r2, { transit: true, csg: 1, nsg: 3 });
    expect(r2.complete).toBe(true);
    expect(r2.response.tsih).toBe(0x101);
    expect(k2.get('MaxBurstLength')).toBe('1048576');
    expect(k2.get('MaxRecvDataSegmentLength')).toBe('262144');
    expect(k2.get('InitialR2T')).toBe('No');
    expect(k2.has('TargetPortalGroupTag')).toBe(false); // first response only
    expect(r2.params).toMatchObject({
      SessionType: 'Normal',
      InitiatorName: INITIATOR,
      InitiatorAlias: 'host1',
      TargetName: TARGET,
      HeaderDigest: 'None',
      DataDigest: 'None',
      TargetMaxRecvDataSegmentLength: 262144,
      InitiatorMaxRecvDataSegmentLength: 262144,
      MaxBurstLength: 1048576,
      FirstBurstLength: 262144,
      InitialR2T: false,
      ImmediateData: true,
      MaxOutstandingR2T: 1,
      ErrorRecoveryLevel: 0,
      MaxConnections: 1,
      DefaultTime2Retain: 0,
    });
    expect(logs.filter((l) => l.level === 'warn')).toEqual([]);
    // Anything after the final response is an error.
    expectFail(login.step(req(3, 3, false, {})), LoginStatus.INITIATOR_ERROR);
  });

  it('normal session with CHAP', () => {
    const { ctx, logs } = context();
    const login = new LoginPhase(ctx);
    const k1 = expectOk(
      login.step(
        req(0, 1, true, {
          InitiatorName: INITIATOR,
          TargetName: SECURE,
          SessionType: 'Normal',
          AuthMethod: 'CHAP,None',
        }),
      ),
      { transit: false, csg: 0, nsg: 0 }, // mid-CHAP: the target does not transit
    );
    expect(k1).toEqual(
      new Map([
        ['TargetPortalGroupTag', '1'],
        ['AuthMethod', 'CHAP'],
      ]),
    );
    const k2 = expectOk(login.step(req(0, 1, true, { CHAP_A: '5' })), { transit: false, csg: 0, nsg: 0 });
    expect(k2.get('CHAP_A')).toBe('5');
    const r3 = login.step(req(0, 1, true, { CHAP_N: 'alice', CHAP_R: chapResponse(k2, SECRET) }));
    expect(expectOk(r3, { transit: true, csg: 0, nsg: 1 })).toEqual(new Map());
    const r4 = login.step(req(1, 3, true, OPEN_ISCSI_OPERATIONAL));
    expectOk(r4, { transit: true, csg: 1, nsg: 3 });
    expect(r4.complete).toBe(true);
    expect(r4.params?.TargetName).toBe(SECURE);
    expect(logs.filter((l) => l.level === 'warn')).toEqual([]);
  });

  it('wrong CHAP secret: authentication failure, logged without the secret', () => {
    const { ctx, logs } = context();
    const login = new LoginPhase(ctx);
    login.step(req(0, 1, true, { InitiatorName: INITIATOR, TargetName: SECURE, AuthMethod: 'CHAP,None' }));
    const k2 = keysOf(login.step(req(0, 1, false, { CHAP_A: '5' })).response.data);
    const r3 = login.step(req(0, 1, true, { CHAP_N: 'alice', CHAP_R: chapResponse(k2, 'not-the-secret') }));
    expectFail(r3, LoginStatus.AUTHENTICATION_FAILURE);
    const warns = logs.filter((l) => l.level === 'warn');
    expect(warns).toHaveLength(1);
    expect(warns[0]!.obj).toMatchObject({ initiator: INITIATOR, peer: '198.51.100.7:40000' });
    expect(JSON.stringify(logs)).not.toContain(SECRET);
    expect(JSON.stringify(logs)).not.toContain('not-the-secret');
  });

  it('CHAP target: AuthMethod=None only, or skipping security, fails authentication', () => {
    const a = context();
    expectFail(
      new LoginPhase(a.ctx).step(
        req(0, 1, true, { InitiatorName: INITIATOR, TargetName: SECURE, AuthMethod: 'None' }),
      ),
      LoginStatus.AUTHENTICATION_FAILURE,
    );
    expect(a.logs.filter((l) => l.level === 'warn')).toHaveLength(1);
    const b = context();
    expectFail(
      new LoginPhase(b.ctx).step(
        req(1, 3, true, { InitiatorName: INITIATOR, TargetName: SECURE, ...OPEN_ISCSI_OPERATIONAL }),
      ),
      LoginStatus.AUTHENTICATION_FAILURE,
    );
    expect(b.logs.filter((l) => l.level === 'warn')).toHaveLength(1);
    // Security stage, no AuthMethod at all, asking to transit to full feature.
    expectFail(
      new LoginPhase(context().ctx).step(req(0, 3, true, { InitiatorName: INITIATOR, TargetName: SECURE })),
      LoginStatus.AUTHENTICATION_FAILURE,
    );
  });

  it('discovery session without auth', () => {
    const login = new LoginPhase(context().ctx);
    const k1 = expectOk(
      login.step(req(0, 1, true, { InitiatorName: INITIATOR, SessionType: 'Discovery', AuthMethod: 'None' })),
      { transit: true, csg: 0, nsg: 1 },
    );
    expect(k1).toEqual(new Map([['AuthMethod', 'None']])); // no TPGT in discovery
    const r2 = login.step(
      req(1, 3, true, {
        HeaderDigest: 'None',
        DataDigest: 'None',
        DefaultTime2Wait: '2',
        DefaultTime2Retain: '0',
        IFMarker: 'No',
        OFMarker: 'No',
        ErrorRecoveryLevel: '0',
        MaxRecvDataSegmentLength: '32768',
      }),
    );
    expectOk(r2, { transit: true, csg: 1, nsg: 3 });
    expect(r2.complete).toBe(true);
    expect(r2.response.tsih).not.toBe(0);
    expect(r2.params).toMatchObject({
      SessionType: 'Discovery',
      TargetName: '',
      InitiatorMaxRecvDataSegmentLength: 32768,
    });
  });

  it('discovery session with CHAP from the discovery auth config', () => {
    const { ctx } = context({ discoveryAuth: { chap: { user: 'disc', secret: 'discovery-secret' } } });
    const login = new LoginPhase(ctx);
    expectOk(
      login.step(
        req(0, 1, true, { InitiatorName: INITIATOR, SessionType: 'Discovery', AuthMethod: 'CHAP,None' }),
      ),
      {
        transit: false,
        csg: 0,
        nsg: 0,
      },
    );
    const k2 = keysOf(login.step(req(0, 1, false, { CHAP_A: '5' })).response.data);
    const r3 = login.step(req(0, 3, true, { CHAP_N: 'disc', CHAP_R: chapResponse(k2, 'discovery-secret') }));
    // Security straight to full feature is allowed (RFC 7143 6.3).
    expectOk(r3, { transit: true, csg: 0, nsg: 3 });
    expect(r3.complete).toBe(true);
    expect(r3.params?.SessionType).toBe('Discovery');
    expect(r3.params?.TargetMaxRecvDataSegmentLength).toBe(262144); // declared in the final response
    expect(keysOf(r3.response.data).get('MaxRecvDataSegmentLength')).toBe('262144');

    const bad = new LoginPhase(ctx);
    expectFail(
      bad.step(req(1, 3, true, { InitiatorName: INITIATOR, SessionType: 'Discovery' })),
      LoginStatus.AUTHENTICATION_FAILURE,
    );
  });
});

describe('LoginPhase: libiscsi sequences', () => {
  it('normal session without CHAP: one round trip starting in the operational stage', () => {
    const login = new LoginPhase(context().ctx);
    const r = login.step(
      req(1, 3, true, {
        InitiatorName: INITIATOR,
        TargetName: TARGET,
        SessionType: 'Normal',
        ...LIBISCSI_OPERATIONAL,
      }),
    );
    const k = expectOk(r, { transit: true, csg: 1, nsg: 3 });
    expect(r.complete).toBe(true);
    // libiscsi reads these back from the final response.
    expect(k.get('TargetPortalGroupTag')).toBe('1');
    expect(k.get('HeaderDigest')).toBe('None');
    expect(k.get('MaxRecvDataSegmentLength')).toBe('262144');
    expect(k.get('ImmediateData')).toBe('Yes');
    expect(r.params?.HeaderDigest).toBe('None');
  });

  it('normal session with CHAP: AuthMethod, CHAP_A with T=0, CHAP_N/R with T=1, then operational', () => {
    const login = new LoginPhase(context().ctx);
    expectOk(
      login.step(
        req(0, 1, true, {
          InitiatorName: INITIATOR,
          TargetName: SECURE,
          SessionType: 'Normal',
          AuthMethod: 'CHAP,None',
        }),
      ),
      { transit: false, csg: 0, nsg: 0 },
    );
    const k2 = expectOk(login.step(req(0, 1, false, { CHAP_A: '5' })), { transit: false, csg: 0, nsg: 0 });
    expect(k2.get('CHAP_C')).toMatch(/^0x[0-9a-f]{32}$/); // libiscsi only parses hex challenges
    expectOk(login.step(req(0, 1, true, { CHAP_N: 'alice', CHAP_R: chapResponse(k2, SECRET) })), {
      transit: true,
      csg: 0,
      nsg: 1,
    });
    const r4 = login.step(req(1, 3, true, LIBISCSI_OPERATIONAL));
    expectOk(r4, { transit: true, csg: 1, nsg: 3 });
    expect(r4.complete).toBe(true);
  });

  it('discovery session (iscsi-ls): session keys are Irrelevant', () => {
    const r = new LoginPhase(context().ctx).step(
      req(1, 3, true, { InitiatorName: INITIATOR, SessionType: 'Discovery', ...LIBISCSI_OPERATIONAL }),
    );
    const k = expectOk(r, { transit: true, csg: 1, nsg: 3 });
    expect(k.get('MaxBurstLength')).toBe('Irrelevant');
    expect(k.get('HeaderDigest')).toBe('None');
    expect(r.complete).toBe(true);
  });
});

describe('LoginPhase: errors', () => {
  const first = { InitiatorName: INITIATOR, TargetName: TARGET };

  it.each([
    ['missing InitiatorName', req(1, 3, true, { TargetName: TARGET }), LoginStatus.MISSING_PARAMETER],
    [
      'empty InitiatorName',
      req(1, 3, true, { InitiatorName: '', TargetName: TARGET }),
      LoginStatus.MISSING_PARAMETER,
    ],
    ['missing TargetName', req(1, 3, true, { InitiatorName: INITIATOR }), LoginStatus.MISSING_PARAMETER],
    [
      'unknown target',
      req(1, 3, true, { InitiatorName: INITIATOR, TargetName: 'iqn.nope:x' }),
      LoginStatus.NOT_FOUND,
    ],
    [
      'bad SessionType',
      req(1, 3, true, { ...first, SessionType: 'Boot' }),
      LoginStatus.SESSION_TYPE_NOT_SUPPORTED,
    ],
    [
      'VersionMin 1',
      req(1, 3, true, first, { versionMin: 1, versionMax: 1 }),
      LoginStatus.UNSUPPORTED_VERSION,
    ],
    ['non-zero TSIH', req(1, 3, true, first, { tsih: 5 }), LoginStatus.SESSION_DOES_NOT_EXIST],
    ['CSG 3', req(3, 3, true, first), LoginStatus.INITIATOR_ERROR],
    ['NSG 2', req(1, 2, true, first), LoginStatus.INITIATOR_ERROR],
    ['NSG before CSG', req(1, 0, true, first), LoginStatus.INITIATOR_ERROR],
    ['T and C both set', req(1, 3, true, first, { cont: true }), LoginStatus.INITIATOR_ERROR],
    [
      'duplicate key',
      req(
        1,
        3,
        true,
        Buffer.from(`InitiatorName=${INITIATOR}\0TargetName=${TARGET}\0MaxConnections=1\0MaxConnections=1\0`),
      ),
      LoginStatus.INITIATOR_ERROR,
    ],
    [
      'missing NUL',
      req(1, 3, true, Buffer.from(`InitiatorName=${INITIATOR}\0TargetName=${TARGET}`)),
      LoginStatus.INITIATOR_ERROR,
    ],
    [
      'binary junk',
      req(1, 3, true, Buffer.from([0xff, 0xfe, 0x00, 0x3d, 0x00])),
      LoginStatus.INITIATOR_ERROR,
    ],
    [
      'security keys in operational stage',
      req(1, 3, true, { ...first, AuthMethod: 'None' }),
      LoginStatus.INITIATOR_ERROR,
    ],
  ])('%s', (_name, request, status) => {
    const r = new LoginPhase(context().ctx).step(request);
    expectFail(r, status);
  });

  it('accepts a target name in other letter case', () => {
    const r = new LoginPhase(context().ctx).step(
      req(1, 3, true, { InitiatorName: INITIATOR, TargetName: TARGET.toUpperCase() }),
    );
    expect(r.complete).toBe(true);
    expect(r.params?.TargetName).toBe(TARGET);
  });

  it('rejects a key negotiated twice across requests', () => {
    const login = new LoginPhase(context().ctx);
    expectOk(login.step(req(1, 3, false, { ...first, MaxBurstLength: '65536' })), {
      transit: false,
      csg: 1,
      nsg: 0,
    });
    expectFail(login.step(req(1, 3, true, { MaxBurstLength: '65536' })), LoginStatus.INITIATOR_ERROR);
  });

  it('allows identity keys repeated with the same value, rejects a changed one', () => {
    const a = new LoginPhase(context().ctx);
    a.step(req(0, 1, false, { ...first, AuthMethod: 'None' }));
    expectOk(a.step(req(0, 1, true, { InitiatorName: INITIATOR })), { transit: true, csg: 0, nsg: 1 });
    const b = new LoginPhase(context().ctx);
    b.step(req(0, 1, false, { ...first, AuthMethod: 'None' }));
    expectFail(b.step(req(0, 1, true, { InitiatorName: 'iqn.other' })), LoginStatus.INITIATOR_ERROR);
  });

  it('rejects a stage the target has not agreed to, and header changes mid-login', () => {
    const a = new LoginPhase(context().ctx);
    a.step(req(0, 1, false, { ...first, AuthMethod: 'None' }));
    expectFail(a.step(req(1, 3, true, {})), LoginStatus.INITIATOR_ERROR);
    const b = new LoginPhase(context().ctx);
    b.step(req(0, 1, false, { ...first }));
    expectFail(b.step(req(0, 1, true, {}, { cid: 9 })), LoginStatus.INITIATOR_ERROR);
    const c = new LoginPhase(context().ctx);
    c.step(req(0, 1, false, { ...first }));
    expectFail(c.step(req(0, 1, true, {}, { isid: Buffer.alloc(6) })), LoginStatus.INITIATOR_ERROR);
  });

  it('allows skipping security with no auth configured, no AuthMethod sent', () => {
    const login = new LoginPhase(context().ctx);
    const r1 = login.step(req(0, 1, true, first));
    expectOk(r1, { transit: true, csg: 0, nsg: 1 });
  });

  it('answers unknown keys NotUnderstood and keeps going', () => {
    const r = new LoginPhase(context().ctx).step(req(1, 3, true, { ...first, 'X-com.example.Foo': '1' }));
    expect(keysOf(r.response.data).get('X-com.example.Foo')).toBe('NotUnderstood');
    expect(r.complete).toBe(true);
  });

  it('bounds the number of login requests', () => {
    const login = new LoginPhase(context().ctx);
    login.step(req(0, 1, false, first));
    let r: LoginStepResult | undefined;
    for (let i = 0; i < LoginLimits.MAX_REQUESTS; i++) {
      r = login.step(req(0, 1, false, {}));
      if (r.failed) break;
    }
    expectFail(r!, LoginStatus.INITIATOR_ERROR);
  });
});

describe('LoginPhase: C bit (multi-PDU text)', () => {
  const text = buildTextKeys([
    ['InitiatorName', INITIATOR],
    ['TargetName', TARGET],
    ['SessionType', 'Normal'],
    ...Object.entries(OPEN_ISCSI_OPERATIONAL),
  ]);

  it('joins fragments split anywhere, answering each with an empty C=0 response', () => {
    for (const size of [1, 7, 64, text.length - 1]) {
      const login = new LoginPhase(context().ctx);
      let r: LoginStepResult | undefined;
      for (let pos = 0; pos < text.length; pos += size) {
        const last = pos + size >= text.length;
        r = login.step(req(1, 3, last, text.subarray(pos, pos + size), { cont: !last }));
        if (!last) {
          expectOk(r, { transit: false, csg: 1, nsg: 0 });
          expect(r.response.data.length).toBe(0);
        }
      }
      expectOk(r!, { transit: true, csg: 1, nsg: 3 });
      expect(r!.complete).toBe(true);
      expect(r!.params?.MaxBurstLength).toBe(1048576);
    }
  });

  it('rejects more than 64 KiB of accumulated text', () => {
    const login = new LoginPhase(context().ctx);
    const chunk = Buffer.alloc(8192, 0x41);
    let r: LoginStepResult | undefined;
    for (let i = 0; i < 9; i++) {
      r = login.step(req(1, 3, false, chunk, { cont: true }));
      if (r.failed) break;
    }
    expectFail(r!, LoginStatus.INITIATOR_ERROR);
  });

  it('rejects a single 64 KiB value', () => {
    const r = new LoginPhase(context().ctx).step(
      req(1, 3, true, Buffer.from(`InitiatorName=${INITIATOR}\0TargetAlias=${'a'.repeat(65536)}\0`)),
    );
    expectFail(r, LoginStatus.INITIATOR_ERROR);
  });
});

describe('LoginPhase: hostile input (property)', () => {
  it('never throws; every response is well formed; failures end the login', () => {
    const keyText = fc
      .array(
        fc.tuple(
          fc.constantFrom(
            'InitiatorName',
            'TargetName',
            'SessionType',
            'AuthMethod',
            'CHAP_A',
            'CHAP_N',
            'CHAP_R',
            'CHAP_I',
            'CHAP_C',
            'MaxBurstLength',
            'HeaderDigest',
            'X-y',
            'InitiatorAlias',
          ),
          fc.oneof(
            fc.constantFrom(INITIATOR, TARGET, SECURE, 'Discovery', 'CHAP,None', 'None', '5', '0x00', ''),
            fc.string(),
          ),
        ),
        { maxLength: 8 },
      )
      .map((kv) => buildTextKeys(kv));
    const data = fc.oneof(
      keyText,
      fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
    );
    const request = fc.record({
      transit: fc.boolean(),
      cont: fc.boolean(),
      csg: fc.integer({ min: 0, max: 3 }),
      nsg: fc.integer({ min: 0, max: 3 }),
      versionMin: fc.constantFrom(0, 0, 0, 1),
      tsih: fc.constantFrom(0, 0, 0, 7),
      data,
    });
    fc.assert(
      fc.property(fc.array(request, { minLength: 1, maxLength: 12 }), (reqs) => {
        const login = new LoginPhase(context().ctx);
        let ended = false;
        for (const r of reqs) {
          const res = login.step(
            req(r.csg, r.nsg, r.transit, r.data, {
              cont: r.cont,
              versionMin: r.versionMin,
              versionMax: 0,
              tsih: r.tsih,
              nsg: r.nsg,
            }),
          );
          keysOf(res.response.data);
          if (ended) expect(res.failed).toBe(true);
          expect(res.failed).toBe(res.response.statusClass !== 0);
          if (res.complete) expect(res.params).toBeDefined();
          if (res.failed || res.complete) ended = true;
        }
      }),
      { numRuns: 3000 },
    );
  });
});
