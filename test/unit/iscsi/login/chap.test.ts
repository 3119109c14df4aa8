import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { ChapRandom } from '../../../../src/workers/session/iscsi/login/chap.ts';
import { chapMd5Response, SecurityNegotiator } from '../../../../src/workers/session/iscsi/login/chap.ts';
import { pairs } from './helpers.ts';

const SECRET = 'correct-horse-battery';
const creds = { user: 'alice', secret: SECRET };
const CHALLENGE = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const fixedRandom: ChapRandom = { bytes: (n) => CHALLENGE.subarray(0, n), int: () => 42 };

/** RFC 1994 4.1, computed independently of the module under test. */
const md5 = (id: number, secret: string, challenge: Buffer): string =>
  createHash('md5')
    .update(Buffer.concat([Buffer.of(id), Buffer.from(secret), challenge]))
    .digest('hex');

function setup(
  opts: { credentials?: typeof creds; targetCredentials?: typeof creds } = { credentials: creds },
) {
  const warnings: Array<{ obj: object; msg: string }> = [];
  const log = { info: () => {}, warn: (obj: object, msg: string) => warnings.push({ obj, msg }) };
  const sec = new SecurityNegotiator({
    ...opts,
    initiatorName: 'iqn.init',
    peer: '192.0.2.1:5000',
    log,
    random: fixedRandom,
  });
  return { sec, warnings };
}

/** Drive AuthMethod and CHAP_A; returns the negotiator awaiting CHAP_N/CHAP_R. */
function challenged(opts?: Parameters<typeof setup>[0]) {
  const s = setup(opts);
  expect(s.sec.step(pairs({ AuthMethod: 'CHAP,None' }))).toEqual({
    answers: [['AuthMethod', 'CHAP']],
    status: 'pending',
  });
  expect(s.sec.step(pairs({ CHAP_A: '7,6,5' }))).toEqual({
    answers: [
      ['CHAP_A', '5'],
      ['CHAP_I', '42'],
      ['CHAP_C', `0x${CHALLENGE.toString('hex')}`],
    ],
    status: 'pending',
  });
  return s;
}

describe('CHAP (RFC 1994, RFC 7143 12.1.3)', () => {
  it('computes the MD5 response of a known vector', () => {
    expect(chapMd5Response(42, SECRET, CHALLENGE).toString('hex')).toBe(md5(42, SECRET, CHALLENGE));
    // RFC 1321 test suite anchor: MD5("") — guards against a broken hash binding.
    expect(createHash('md5').update('').digest('hex')).toBe('d41d8cd98f00b204e9800998ecf8427e');
  });

  it('accepts a correct response (hex and base64)', () => {
    const { sec, warnings } = challenged();
    const r = sec.step(pairs({ CHAP_N: 'alice', CHAP_R: `0x${md5(42, SECRET, CHALLENGE)}` }));
    expect(r).toEqual({ answers: [], status: 'authenticated' });
    expect(sec.authenticated).toBe(true);
    expect(warnings).toEqual([]);

    const b = challenged().sec;
    const b64 = Buffer.from(md5(42, SECRET, CHALLENGE), 'hex').toString('base64');
    expect(b.step(pairs({ CHAP_N: 'alice', CHAP_R: `0b${b64}` })).status).toBe('authenticated');
    const upper = challenged().sec;
    expect(
      upper.step(pairs({ CHAP_N: 'alice', CHAP_R: `0X${md5(42, SECRET, CHALLENGE).toUpperCase()}` })).status,
    ).toBe('authenticated');
  });

  it.each([
    ['wrong secret', { CHAP_N: 'alice', CHAP_R: `0x${md5(42, 'wrong-secret-123', CHALLENGE)}` }],
    ['wrong user', { CHAP_N: 'mallory', CHAP_R: `0x${md5(42, SECRET, CHALLENGE)}` }],
    ['wrong identifier', { CHAP_N: 'alice', CHAP_R: `0x${md5(43, SECRET, CHALLENGE)}` }],
    ['short response', { CHAP_N: 'alice', CHAP_R: '0x0011' }],
    ['junk response', { CHAP_N: 'alice', CHAP_R: 'hello' }],
    ['name without response', { CHAP_N: 'alice' }],
  ])('fails on %s and logs without secrets', (_name, keys) => {
    const { sec, warnings } = challenged();
    expect(sec.step(pairs(keys)).status).toBe('failed');
    expect(warnings).toHaveLength(1);
    const logged = JSON.stringify(warnings);
    expect(logged).toContain('iqn.init');
    expect(logged).toContain('192.0.2.1:5000');
    expect(logged).not.toContain(SECRET);
    expect(logged).not.toContain(CHALLENGE.toString('hex'));
    // A failed negotiator stays failed.
    expect(sec.step(pairs({ CHAP_N: 'alice', CHAP_R: `0x${md5(42, SECRET, CHALLENGE)}` })).status).toBe(
      'failed',
    );
  });

  it('requires CHAP when credentials are configured', () => {
    const { sec, warnings } = setup();
    expect(sec.step(pairs({ AuthMethod: 'None' })).status).toBe('failed');
    expect(warnings).toHaveLength(1);
    expect(setup().sec.acceptImplicitNone()).toBe(false);
  });

  it('selects None when no credentials are configured', () => {
    const { sec } = setup({});
    expect(sec.step(pairs({ AuthMethod: 'CHAP,None' }))).toEqual({
      answers: [['AuthMethod', 'None']],
      status: 'authenticated',
    });
    expect(setup({}).sec.step(pairs({ AuthMethod: 'CHAP' })).status).toBe('failed');
    expect(setup({}).sec.acceptImplicitNone()).toBe(true);
  });

  it('rejects CHAP algorithms other than MD5 and out-of-order keys', () => {
    const a = setup().sec;
    a.step(pairs({ AuthMethod: 'CHAP' }));
    expect(a.step(pairs({ CHAP_A: '6,7' })).status).toBe('failed');
    expect(setup().sec.step(pairs({ CHAP_A: '5' })).status).toBe('failed');
    const c = setup().sec;
    c.step(pairs({ AuthMethod: 'CHAP' }));
    expect(c.step(pairs({ CHAP_N: 'alice', CHAP_R: '0x00' })).status).toBe('failed');
  });

  it('fails mutual CHAP when the target has no credentials of its own', () => {
    const { sec, warnings } = challenged();
    const r = sec.step(
      pairs({
        CHAP_N: 'alice',
        CHAP_R: `0x${md5(42, SECRET, CHALLENGE)}`,
        CHAP_I: '7',
        CHAP_C: `0x${'ab'.repeat(16)}`,
      }),
    );
    expect(r.status).toBe('failed');
    expect(JSON.stringify(warnings)).toContain('mutual');
  });

  it('answers mutual CHAP through the hook, and refuses a reflected challenge', () => {
    const target = { user: 'iqn.target', secret: 'target-secret-xyz' };
    const initiatorChallenge = Buffer.alloc(16, 0x5a);
    const { sec } = challenged({ credentials: creds, targetCredentials: target });
    const r = sec.step(
      pairs({
        CHAP_N: 'alice',
        CHAP_R: `0x${md5(42, SECRET, CHALLENGE)}`,
        CHAP_I: '7',
        CHAP_C: `0x${initiatorChallenge.toString('hex')}`,
      }),
    );
    expect(r).toEqual({
      answers: [
        ['CHAP_N', 'iqn.target'],
        ['CHAP_R', `0x${md5(7, target.secret, initiatorChallenge)}`],
      ],
      status: 'authenticated',
    });

    const reflected = challenged({ credentials: creds, targetCredentials: target }).sec;
    const rr = reflected.step(
      pairs({
        CHAP_N: 'alice',
        CHAP_R: `0x${md5(42, SECRET, CHALLENGE)}`,
        CHAP_I: '42',
        CHAP_C: `0x${CHALLENGE.toString('hex')}`,
      }),
    );
    expect(rr.status).toBe('failed');
  });

  it('issues a fresh random challenge of 16 bytes by default', () => {
    const log = { info: () => {}, warn: () => {} };
    const challenges = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const sec = new SecurityNegotiator({ credentials: creds, initiatorName: 'i', peer: 'p', log });
      sec.step(pairs({ AuthMethod: 'CHAP' }));
      const ans = new Map(sec.step(pairs({ CHAP_A: '5' })).answers);
      const c = ans.get('CHAP_C')!;
      expect(c).toMatch(/^0x[0-9a-f]{32}$/);
      expect(Number(ans.get('CHAP_I'))).toBeLessThan(256);
      challenges.add(c);
    }
    expect(challenges.size).toBe(4);
  });
});
