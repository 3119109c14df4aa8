/**
 * iSCSI authentication against the live target (RFC 7143 12.1.3, 9.2.1): mutual CHAP per
 * target and for discovery sessions, driven by the test initiator, which computes and
 * checks every CHAP value itself (test/helpers/initiator.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, startTarget, type StartedTarget } from '../helpers/target.ts';
import {
  Initiator,
  Opcode,
  Status,
  parseTextPairs,
  read10,
  type LoginOptions,
  type LoginResult,
} from '../helpers/initiator.ts';

const INI = { user: 'host-1', secret: 'Initiator-Secret-a1b2c3' };
const TGT = { user: 'spindle-target', secret: 'Target-Secret-d4e5f6a7' };
const DISC_INI = { user: 'disc-host', secret: 'Discovery-Secret-0918' };
const DISC_TGT = { user: 'spindle-discovery', secret: 'Discovery-Target-Secret-77' };
const SECRETS = [INI, TGT, DISC_INI, DISC_TGT].map((c) => c.secret);

/** The target must answer and close well within this, including a throttle hold. */
const CLOSE_MS = 8000;

let t: StartedTarget;
let onewayIqn: string;

beforeAll(async () => {
  t = await startTarget({
    iqn: 'iqn.2026-11.io.spindle:auth',
    yaml: ({ port, iqn }) => `
clusterId: test
logging: { level: info }
workers: { session: 2, lun: 1 }
devices:
  - name: ram0
    ram: { size: 16MiB }
targets:
  - iqn: ${iqn}
    portals: ['127.0.0.1:${port}']
    luns: { 0: ram0 }
    auth:
      chap: { user: ${INI.user}, secret: '${INI.secret}' }
      mutualChap: { user: ${TGT.user}, secret: '${TGT.secret}' }
  - iqn: ${iqn}-oneway
    portals: ['127.0.0.1:${port}']
    luns: { 0: ram0 }
    auth:
      chap: { user: ${INI.user}, secret: '${INI.secret}' }
discovery:
  auth:
    chap: { user: ${DISC_INI.user}, secret: '${DISC_INI.secret}' }
    mutualChap: { user: ${DISC_TGT.user}, secret: '${DISC_TGT.secret}' }
`,
  });
  onewayIqn = `${t.iqn}-oneway`;
});

afterAll(async () => {
  const code = await t?.stop('SIGTERM');
  const out = t?.output() ?? '';
  cleanup(t);
  expect(code).toBe(0);
  // Secrets never reach the logs, whatever happened above.
  for (const s of SECRETS) expect(out).not.toContain(s);
});

/** A distinct ISID and InitiatorName per test, so no two share a session or a throttle key. */
let n = 0;
function who(): { isid: Buffer; initiatorName: string } {
  n++;
  return {
    isid: Buffer.from([0x80, 0xa1, 0x7e, 0x00, 0x00, n]),
    initiatorName: `iqn.2026-11.io.spindle:auth-test-${n}`,
  };
}

async function login(o: LoginOptions): Promise<{ ini: Initiator; r: LoginResult }> {
  const ini = await Initiator.connect(t.port);
  try {
    const r = await ini.login({ ...who(), keys: [['MaxRecvDataSegmentLength', '65536']], ...o });
    return { ini, r };
  } catch (err) {
    ini.close();
    throw err;
  }
}

const AUTH_FAILURE = [0x02, 0x01];

/** Wait until the target's log output contains `text` (logs are asynchronous). */
async function logged(text: string, timeoutMs = 3000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (!t.output().includes(text)) {
    if (Date.now() > deadline) throw new Error(`not logged: ${text}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return t.output();
}

describe('mutual CHAP, normal session', () => {
  it('logs in: the target answers with its configured name and a response the initiator verifies', async () => {
    const { ini, r } = await login({ targetName: t.iqn, chap: INI, mutualChap: TGT });
    try {
      expect(r.ok).toBe(true);
      expect(r.targetAuth).toBe('verified');
      expect(r.targetKeys['CHAP_N']).toBe(TGT.user);
      expect(r.targetKeys['CHAP_R']).toMatch(/^0x[0-9a-f]{32}$/);
      const rd = await ini.scsi(read10(0, 1), { read: true, edtl: 512 });
      expect(rd.status).toBe(Status.GOOD);
      const lo = await ini.logout();
      expect(lo.bhs[2]).toBe(0);
    } finally {
      ini.close();
    }
  });

  it('with a longer initiator challenge (32 bytes, as libiscsi sends)', async () => {
    const { ini, r } = await login({
      targetName: t.iqn,
      chap: INI,
      mutualChap: { ...TGT, id: 0, challenge: Buffer.alloc(32, 0xa5) },
    });
    ini.close();
    expect(r.ok).toBe(true);
    expect(r.targetAuth).toBe('verified');
  });

  it('an initiator expecting another target secret detects the impostor and stops', async () => {
    const { ini, r } = await login({
      targetName: t.iqn,
      chap: INI,
      mutualChap: { ...TGT, secret: 'Not-The-Target-Secret-1' },
    });
    ini.close();
    expect(r.ok).toBe(false);
    expect(r.targetAuth).toBe('failed');
    // The target itself accepted the initiator: it was the initiator that said no.
    expect([r.statusClass, r.statusDetail]).toEqual([0, 0]);
  });

  it('an initiator expecting another target name stops too', async () => {
    const { ini, r } = await login({ targetName: t.iqn, chap: INI, mutualChap: { ...TGT, user: 'someone' } });
    ini.close();
    expect(r.targetAuth).toBe('failed');
  });

  it('a reflected challenge gets an authentication failure and the connection is closed', async () => {
    const { ini, r } = await login({
      targetName: t.iqn,
      chap: INI,
      mutualChap: { ...TGT, challenge: 'reflect' },
    });
    expect(r.ok).toBe(false);
    expect([r.statusClass, r.statusDetail]).toEqual(AUTH_FAILURE);
    expect(r.targetKeys['CHAP_R']).toBeUndefined(); // the target answered nothing
    await ini.expectClose(CLOSE_MS);
  });

  it('a target with one-way CHAP only refuses an initiator that asks for mutual CHAP', async () => {
    const { ini, r } = await login({ targetName: onewayIqn, chap: INI, mutualChap: TGT });
    expect([r.statusClass, r.statusDetail]).toEqual(AUTH_FAILURE);
    await ini.expectClose(CLOSE_MS);
    // ...and accepts the same initiator with one-way CHAP.
    const ok = await login({ targetName: onewayIqn, chap: INI });
    ok.ini.close();
    expect(ok.r.ok).toBe(true);
  });

  it('a wrong initiator secret is refused and logged with initiator name and address, not the secret', async () => {
    const id = who();
    const ini = await Initiator.connect(t.port);
    const r = await ini.login({
      ...id,
      targetName: t.iqn,
      chap: { ...INI, secret: 'Wrong-Initiator-Secret' },
    });
    expect([r.statusClass, r.statusDetail]).toEqual(AUTH_FAILURE);
    await ini.expectClose(CLOSE_MS);
    const out = await logged(id.initiatorName);
    const line = out
      .split('\n')
      .find((l) => l.includes(id.initiatorName) && l.includes('authentication failed'));
    expect(line).toBeDefined();
    expect(line).toContain('127.0.0.1');
    expect(out).not.toContain('Wrong-Initiator-Secret');
  });
});

describe('discovery sessions with discovery.auth', () => {
  it('an unauthenticated discovery session is refused before SendTargets', async () => {
    const { ini, r } = await login({ sessionType: 'Discovery' });
    expect(r.ok).toBe(false);
    expect([r.statusClass, r.statusDetail]).toEqual(AUTH_FAILURE);
    const after = await ini.expectClose(CLOSE_MS);
    expect(after.filter((p) => p.opcode === Opcode.TEXT_RESPONSE)).toHaveLength(0);
  });

  it('skipping the security stage of a discovery login is refused', async () => {
    const { ini, r } = await login({ sessionType: 'Discovery', skipSecurity: true });
    expect([r.statusClass, r.statusDetail]).toEqual(AUTH_FAILURE);
    await ini.expectClose(CLOSE_MS);
  });

  it('target credentials do not open a discovery session', async () => {
    const { ini, r } = await login({ sessionType: 'Discovery', chap: INI });
    expect([r.statusClass, r.statusDetail]).toEqual(AUTH_FAILURE);
    await ini.expectClose(CLOSE_MS);
  });

  it('mutual CHAP with the discovery credentials, then SendTargets=All', async () => {
    const { ini, r } = await login({ sessionType: 'Discovery', chap: DISC_INI, mutualChap: DISC_TGT });
    try {
      expect(r.ok).toBe(true);
      expect(r.targetAuth).toBe('verified');
      expect(r.targetKeys['CHAP_N']).toBe(DISC_TGT.user);
      const resp = await ini.text({ SendTargets: 'All' });
      expect(resp.opcode).toBe(Opcode.TEXT_RESPONSE);
      const names = parseTextPairs(resp.data)
        .filter(([k]) => k === 'TargetName')
        .map(([, v]) => v);
      expect(names).toEqual(expect.arrayContaining([t.iqn, onewayIqn]));
      const lo = await ini.logout();
      expect(lo.bhs[2]).toBe(0);
    } finally {
      ini.close();
    }
  });

  it('a discovery initiator expecting another target secret detects it', async () => {
    const { ini, r } = await login({
      sessionType: 'Discovery',
      chap: DISC_INI,
      mutualChap: { ...DISC_TGT, secret: TGT.secret },
    });
    ini.close();
    expect(r.targetAuth).toBe('failed');
  });
});

/**
 * Flip once the connection holds failed Login Responses for AuthThrottle.failure()'s delay
 * (src/supervisor/auth-throttle.ts, iscsi.authBackoffMaxSec).
 */
const THROTTLE_WIRED = true;

describe('failed-authentication throttle', () => {
  it.skipIf(!THROTTLE_WIRED)('holds repeated failures of one initiator longer each time', async () => {
    const id = who();
    const held: number[] = [];
    for (let i = 0; i < 3; i++) {
      const ini = await Initiator.connect(t.port);
      const start = Date.now();
      const r = await ini.login({
        ...id,
        targetName: t.iqn,
        chap: { ...INI, secret: 'Wrong-Initiator-Secret' },
        timeoutMs: CLOSE_MS,
      });
      held.push(Date.now() - start);
      expect([r.statusClass, r.statusDetail]).toEqual(AUTH_FAILURE);
      await ini.expectClose(CLOSE_MS);
    }
    // 0.5 s, 1 s, 2 s (RTTs on loopback are negligible against these).
    expect(held[0]).toBeGreaterThanOrEqual(450);
    expect(held[1]).toBeGreaterThanOrEqual(950);
    expect(held[2]).toBeGreaterThanOrEqual(1950);
    // The right secret still logs in at once, and resets the count.
    const ok = await login({ ...id, targetName: t.iqn, chap: INI });
    ok.ini.close();
    expect(ok.r.ok).toBe(true);
  });
});
