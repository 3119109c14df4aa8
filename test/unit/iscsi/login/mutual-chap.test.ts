/**
 * Mutual CHAP (RFC 7143 12.1.3) and its reflection defences (RFC 7143 9.2.1), through the
 * CHAP module and through the whole login phase, for normal and discovery sessions. The
 * initiator side is computed here with node:crypto, independently of the code under test.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildTextKeys } from '../../../../src/shared/iscsi/text-keys.ts';
import type { ChapRandom } from '../../../../src/workers/session/iscsi/login/chap.ts';
import { SecurityNegotiator } from '../../../../src/workers/session/iscsi/login/chap.ts';
import { LoginPhase, LoginStatus } from '../../../../src/workers/session/iscsi/login/login-phase.ts';
import type {
  LoginContext,
  LoginRequest,
  LoginStepResult,
  LoginTargetInfo,
} from '../../../../src/workers/session/iscsi/login/types.ts';
import { keysOf, pairs, tuning } from './helpers.ts';

const INITIATOR = 'iqn.1993-08.org.debian:01:cafe';
const TARGET = 'iqn.2024-01.io.spindle:mutual';
const ONEWAY = 'iqn.2024-01.io.spindle:oneway';
const PEER = '198.51.100.7:40000';
const INI = { user: 'alice', secret: 'initiator-secret-1' };
const TGT = { user: 'iqn.2024-01.io.spindle:mutual', secret: 'target-secret-22' };
const DISC_INI = { user: 'disc', secret: 'discovery-secret' };
const DISC_TGT = { user: 'spindle-discovery', secret: 'discovery-target-secret' };

/** RFC 1994 4.1: MD5(identifier || secret || challenge), the initiator's computation. */
function md5(id: number, secret: string, challenge: Buffer): Buffer {
  return createHash('md5')
    .update(Buffer.concat([Buffer.of(id), Buffer.from(secret, 'utf8'), challenge]))
    .digest();
}
const hex = (b: Buffer): string => `0x${b.toString('hex')}`;

/** Read a CHAP_R the target sent (hex or base64 binary, RFC 7143 6.1). */
function binary(v: string | undefined): Buffer {
  if (v === undefined) throw new Error('missing value');
  if (/^0x/i.test(v)) return Buffer.from(v.slice(2), 'hex');
  if (/^0b/i.test(v)) return Buffer.from(v.slice(2), 'base64');
  throw new Error(`not a binary value: ${v}`);
}

// ---------------------------------------------------------------------------------------------
// SecurityNegotiator

const TARGET_CHALLENGE = Buffer.from('0f1e2d3c4b5a69788796a5b4c3d2e1f0', 'hex');
const fixed: ChapRandom = { bytes: (n) => TARGET_CHALLENGE.subarray(0, n), int: () => 200 };

function negotiator(o: { credentials?: typeof INI; targetCredentials?: typeof TGT } = {}) {
  const warnings: object[] = [];
  const sec = new SecurityNegotiator({
    credentials: o.credentials ?? INI,
    ...(o.targetCredentials === undefined ? {} : { targetCredentials: o.targetCredentials }),
    targetName: TARGET,
    initiatorName: INITIATOR,
    peer: PEER,
    log: { info: () => {}, warn: (obj) => warnings.push(obj) },
    random: fixed,
  });
  expect(sec.step(pairs({ AuthMethod: 'CHAP' })).status).toBe('pending');
  const ans = new Map(sec.step(pairs({ CHAP_A: '5' })).answers);
  expect(ans.get('CHAP_I')).toBe('200');
  expect(ans.get('CHAP_C')).toBe(hex(TARGET_CHALLENGE));
  return { sec, warnings };
}

/** The initiator's CHAP_N/CHAP_R for the fixed target challenge, plus extra keys. */
function answer(extra: Record<string, string> = {}, secret = INI.secret): Record<string, string> {
  return { CHAP_N: INI.user, CHAP_R: hex(md5(200, secret, TARGET_CHALLENGE)), ...extra };
}

describe('mutual CHAP: SecurityNegotiator (RFC 7143 12.1.3)', () => {
  it('answers the initiator challenge with the configured target name and a correct response', () => {
    const myChallenge = Buffer.from('aa'.repeat(8) + '55'.repeat(24), 'hex'); // 32 bytes, as libiscsi
    const { sec, warnings } = negotiator({ targetCredentials: TGT });
    const r = sec.step(pairs(answer({ CHAP_I: '17', CHAP_C: hex(myChallenge) })));
    expect(r.status).toBe('authenticated');
    const got = new Map(r.answers);
    expect(got.get('CHAP_N')).toBe(TGT.user);
    expect(binary(got.get('CHAP_R')).equals(md5(17, TGT.secret, myChallenge))).toBe(true);
    // The answer is not what the initiator secret would give: the directions differ.
    expect(binary(got.get('CHAP_R')).equals(md5(17, INI.secret, myChallenge))).toBe(false);
    expect(warnings).toEqual([]);
  });

  it('accepts CHAP_I as a hex constant and CHAP_C as base64', () => {
    const myChallenge = Buffer.alloc(16, 0x33);
    const { sec } = negotiator({ targetCredentials: TGT });
    const r = sec.step(pairs(answer({ CHAP_I: '0xff', CHAP_C: `0b${myChallenge.toString('base64')}` })));
    expect(r.status).toBe('authenticated');
    expect(binary(new Map(r.answers).get('CHAP_R')).equals(md5(255, TGT.secret, myChallenge))).toBe(true);
  });

  it('one-way CHAP still works when mutual credentials are configured but not asked for', () => {
    const { sec } = negotiator({ targetCredentials: TGT });
    expect(sec.step(pairs(answer()))).toEqual({ answers: [], status: 'authenticated' });
  });

  it('refuses a reflected challenge (the target challenge sent back), logging no secrets', () => {
    const { sec, warnings } = negotiator({ targetCredentials: TGT });
    const r = sec.step(pairs(answer({ CHAP_I: '200', CHAP_C: hex(TARGET_CHALLENGE) })));
    expect(r).toEqual({ answers: [], status: 'failed' });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ initiator: INITIATOR, peer: PEER, target: TARGET });
    expect(JSON.stringify(warnings)).toMatch(/reflect/);
    // Same bytes with another identifier are still the same challenge.
    const other = negotiator({ targetCredentials: TGT }).sec;
    expect(other.step(pairs(answer({ CHAP_I: '3', CHAP_C: hex(TARGET_CHALLENGE) }))).status).toBe('failed');
  });

  it('refuses a response that the target would compute with its own secret (RFC 7143 9.2.1)', () => {
    // Only reachable with a configuration that bypassed validation: one secret both ways.
    const shared = { user: 'alice', secret: 'one-secret-for-both' };
    const { sec, warnings } = negotiator({
      credentials: shared,
      targetCredentials: { ...TGT, secret: shared.secret },
    });
    expect(sec.step(pairs(answer({}, shared.secret))).status).toBe('failed');
    expect(JSON.stringify(warnings)).toContain('both directions');
    expect(JSON.stringify(warnings)).not.toContain(shared.secret);
  });

  it.each([
    ['identifier above 255', { CHAP_I: '256', CHAP_C: hex(Buffer.alloc(16, 1)) }],
    ['identifier not a number', { CHAP_I: 'x', CHAP_C: hex(Buffer.alloc(16, 1)) }],
    ['identifier without challenge', { CHAP_I: '1' }],
    ['challenge without identifier', { CHAP_C: hex(Buffer.alloc(16, 1)) }],
    ['challenge shorter than 16 bytes', { CHAP_I: '1', CHAP_C: hex(Buffer.alloc(15, 1)) }],
    ['challenge longer than 1024 bytes', { CHAP_I: '1', CHAP_C: hex(Buffer.alloc(1025, 1)) }],
    ['challenge not binary', { CHAP_I: '1', CHAP_C: 'hello' }],
  ])('fails on %s', (_name, extra) => {
    const { sec, warnings } = negotiator({ targetCredentials: TGT });
    expect(sec.step(pairs(answer(extra))).status).toBe('failed');
    expect(warnings).toHaveLength(1);
    expect(JSON.stringify(warnings)).not.toContain(TGT.secret);
  });

  it('accepts a challenge of exactly 1024 bytes', () => {
    const big = Buffer.alloc(1024, 0x42);
    const { sec } = negotiator({ targetCredentials: TGT });
    const r = sec.step(pairs(answer({ CHAP_I: '9', CHAP_C: hex(big) })));
    expect(binary(new Map(r.answers).get('CHAP_R')).equals(md5(9, TGT.secret, big))).toBe(true);
  });

  it('a wrong initiator response fails before the target answers anything', () => {
    const { sec } = negotiator({ targetCredentials: TGT });
    const r = sec.step(pairs(answer({ CHAP_I: '1', CHAP_C: hex(Buffer.alloc(16, 7)) }, 'wrong-secret-xyz')));
    expect(r).toEqual({ answers: [], status: 'failed' });
  });
});

// ---------------------------------------------------------------------------------------------
// LoginPhase

const targets: LoginTargetInfo[] = [
  {
    iqn: TARGET,
    portalGroupTag: 1,
    addresses: ['192.0.2.10:3260,1'],
    auth: { chap: INI, mutualChap: TGT },
  },
  { iqn: ONEWAY, portalGroupTag: 1, addresses: ['192.0.2.10:3260,1'], auth: { chap: INI } },
];

function context(over: Partial<LoginContext> = {}) {
  const logs: Array<{ level: string; obj: object; msg: string }> = [];
  let tsih = 0x200;
  const ctx: LoginContext = {
    targets,
    portalGroupTag: 1,
    discoveryAuth: { chap: DISC_INI, mutualChap: DISC_TGT },
    tuning,
    allocTsih: () => ++tsih,
    peer: PEER,
    log: {
      info: (obj, msg) => logs.push({ level: 'info', obj, msg }),
      warn: (obj, msg) => logs.push({ level: 'warn', obj, msg }),
    },
    ...over,
  };
  return { ctx, logs };
}

const ISID = Buffer.from([0x00, 0x02, 0x3d, 0x00, 0x00, 0x02]);
function req(csg: number, nsg: number, transit: boolean, keys: Record<string, string>): LoginRequest {
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
    data: buildTextKeys(Object.entries(keys)),
  };
}

function ok(r: LoginStepResult): Map<string, string> {
  expect(r.failed).toBe(false);
  expect(r.response.statusClass).toBe(0);
  return keysOf(r.response.data);
}

/**
 * Drive a login to the point where the initiator sends its CHAP response (with its own
 * challenge when `mutual`); returns the login, the final security-stage result, and the
 * identifier/challenge the initiator used.
 */
function chapLogin(
  leading: Record<string, string>,
  creds: { user: string; secret: string },
  ctxOver: Partial<LoginContext> = {},
  mutual?: { id: number; challenge: Buffer } | 'reflect',
) {
  const c = context(ctxOver);
  const login = new LoginPhase(c.ctx);
  ok(login.step(req(0, 1, false, { InitiatorName: INITIATOR, ...leading, AuthMethod: 'CHAP,None' })));
  const k = ok(login.step(req(0, 1, false, { CHAP_A: '5' })));
  const id = Number(k.get('CHAP_I'));
  const challenge = binary(k.get('CHAP_C'));
  expect(challenge.length).toBe(16);
  const keys: Record<string, string> = { CHAP_N: creds.user, CHAP_R: hex(md5(id, creds.secret, challenge)) };
  const mine = mutual === 'reflect' ? { id, challenge } : mutual;
  if (mine !== undefined) Object.assign(keys, { CHAP_I: String(mine.id), CHAP_C: hex(mine.challenge) });
  const result = login.step(req(0, 1, true, keys));
  return { login, result, mine, logs: c.logs };
}

const OPERATIONAL = { HeaderDigest: 'None', DataDigest: 'None', MaxRecvDataSegmentLength: '65536' };

describe('mutual CHAP: LoginPhase, configured per target and for discovery', () => {
  it('normal session: the target proves itself with the configured mutualChap credentials', () => {
    const mine = { id: 77, challenge: Buffer.alloc(16, 0xc3) };
    const { login, result, logs } = chapLogin({ TargetName: TARGET }, INI, {}, mine);
    const k = ok(result);
    expect(result.response.transit).toBe(true);
    expect(k.get('CHAP_N')).toBe(TGT.user);
    expect(binary(k.get('CHAP_R')).equals(md5(77, TGT.secret, mine.challenge))).toBe(true);
    expect(login.initiatorName).toBe(INITIATOR);
    const done = login.step(req(1, 3, true, OPERATIONAL));
    expect(done.complete).toBe(true);
    expect(done.params?.TargetName).toBe(TARGET);
    expect(logs.filter((l) => l.level === 'warn')).toEqual([]);
  });

  it('a target with one-way CHAP only fails an initiator that asks for mutual CHAP', () => {
    const { result, logs } = chapLogin(
      { TargetName: ONEWAY },
      INI,
      {},
      { id: 1, challenge: Buffer.alloc(16, 1) },
    );
    expect(result.failed).toBe(true);
    expect(result.response).toMatchObject(LoginStatus.AUTHENTICATION_FAILURE);
    const warn = logs.filter((l) => l.level === 'warn');
    expect(warn).toHaveLength(1);
    expect(warn[0]!.obj).toMatchObject({ initiator: INITIATOR, peer: PEER, target: ONEWAY });
  });

  it('refuses a reflected challenge with an authentication failure', () => {
    const { result, logs } = chapLogin({ TargetName: TARGET }, INI, {}, 'reflect');
    expect(result.failed).toBe(true);
    expect(result.response).toMatchObject(LoginStatus.AUTHENTICATION_FAILURE);
    expect(keysOf(result.response.data).size).toBe(0); // no CHAP_R leaks out
    const text = JSON.stringify(logs);
    expect(text).toContain('reflected');
    for (const s of [INI.secret, TGT.secret]) expect(text).not.toContain(s);
  });

  it('discovery session: mutual CHAP from discovery.auth, then full feature', () => {
    const mine = { id: 5, challenge: Buffer.alloc(20, 0x99) };
    const { login, result } = chapLogin({ SessionType: 'Discovery' }, DISC_INI, {}, mine);
    const k = ok(result);
    expect(k.get('CHAP_N')).toBe(DISC_TGT.user);
    expect(binary(k.get('CHAP_R')).equals(md5(5, DISC_TGT.secret, mine.challenge))).toBe(true);
    const done = login.step(req(1, 3, true, OPERATIONAL));
    expect(done.complete).toBe(true);
    expect(done.params?.SessionType).toBe('Discovery');
  });

  it('discovery session with auth: target credentials never answer a discovery login', () => {
    // The per-target initiator credentials are not the discovery ones.
    const { result, logs } = chapLogin({ SessionType: 'Discovery' }, INI);
    expect(result.failed).toBe(true);
    expect(result.response).toMatchObject(LoginStatus.AUTHENTICATION_FAILURE);
    expect(logs.filter((l) => l.level === 'warn')[0]!.obj).toMatchObject({
      initiator: INITIATOR,
      peer: PEER,
    });
  });

  it('discovery session with auth refuses AuthMethod=None and a skipped security stage', () => {
    const a = new LoginPhase(context().ctx);
    const r1 = a.step(
      req(0, 1, true, { InitiatorName: INITIATOR, SessionType: 'Discovery', AuthMethod: 'None' }),
    );
    expect(r1.failed).toBe(true);
    expect(r1.response).toMatchObject(LoginStatus.AUTHENTICATION_FAILURE);
    const b = new LoginPhase(context().ctx);
    const r2 = b.step(
      req(1, 3, true, { InitiatorName: INITIATOR, SessionType: 'Discovery', ...OPERATIONAL }),
    );
    expect(r2.failed).toBe(true);
    expect(r2.response).toMatchObject(LoginStatus.AUTHENTICATION_FAILURE);
    expect(b.initiatorName).toBe(INITIATOR);
  });

  it('mutualChap without chap in a hand-built context is ignored, not half-applied', () => {
    // The configuration refuses this; the login logic must still not offer mutual alone.
    const { ctx } = context({ discoveryAuth: { mutualChap: DISC_TGT } });
    const login = new LoginPhase(ctx);
    const k = ok(
      login.step(
        req(0, 1, true, { InitiatorName: INITIATOR, SessionType: 'Discovery', AuthMethod: 'CHAP,None' }),
      ),
    );
    expect(k.get('AuthMethod')).toBe('None');
  });
});
