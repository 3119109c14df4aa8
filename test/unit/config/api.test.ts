/**
 * The `api` section (admin API and /metrics) and the secrets kept out of the file: a token
 * is required off loopback and read from a file or the environment, never inline; CHAP
 * secrets may come from a file or the environment too (a ConfigMap plus a Secret).
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, type ConfigEnv } from '../../../src/supervisor/config/load.ts';

const ENV: ConfigEnv = { hostname: 'host-x', cores: 2, cwd: '/srv', vars: {} };
const TOKEN = 'abcdefghijklmnop0123';

function yaml(api: string, auth = ''): string {
  return `
${api}
devices: [{ name: r, ram: { size: 1MiB } }]
targets:
  - iqn: iqn.2026-11.io.spindle:t
    portals: ['127.0.0.1:3260']
    luns: { 0: r }
${auth}
`;
}

function problems(text: string, env: ConfigEnv = ENV): string[] {
  try {
    parseConfig(text, 'c.yaml', env);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.path}: ${i.message}`);
    throw err;
  }
  return [];
}

describe('api', () => {
  it('is absent unless configured; api: {} listens on 127.0.0.1:9470 without a token', () => {
    expect(parseConfig(yaml(''), 'c.yaml', ENV).api).toBeUndefined();
    expect(parseConfig(yaml('api: {}'), 'c.yaml', ENV).api).toEqual({ listen: { host: '127.0.0.1', port: 9470 } });
    expect(parseConfig(yaml('api: { listen: "[::1]:9000" }'), 'c.yaml', ENV).api).toEqual({ listen: { host: '::1', port: 9000 } });
  });

  it('refuses any address but loopback without a token, naming api.listen', () => {
    expect(problems(yaml('api: { listen: "0.0.0.0:9470" }'))).toEqual([
      'api.listen: listens on 0.0.0.0:9470, beyond this host: a bearer token is required (tokenFile or tokenEnv), or listen on 127.0.0.1',
    ]);
    expect(problems(yaml('api: { listen: "10.0.0.5:9470" }'))[0]).toMatch(/^api\.listen: .*token is required/);
  });

  it('reads the token from a file (one trailing newline dropped) or the environment', () => {
    const fromFile = parseConfig(yaml('api: { listen: "0.0.0.0:9470", tokenFile: /run/secrets/token }'), 'c.yaml', {
      ...ENV,
      readFile: (p) => (p === '/run/secrets/token' ? `${TOKEN}\n` : ''),
    });
    expect(fromFile.api).toEqual({ listen: { host: '0.0.0.0', port: 9470 }, token: TOKEN });
    const fromEnv = parseConfig(yaml('api: { listen: "0.0.0.0:9470", tokenEnv: SPINDLE_API_TOKEN }'), 'c.yaml', { ...ENV, vars: { SPINDLE_API_TOKEN: TOKEN } });
    expect(fromEnv.api?.token).toBe(TOKEN);
  });

  it('reports every token problem at the field that named its source, never the token', () => {
    expect(problems(yaml('api: { listen: "0.0.0.0:9470", tokenEnv: NOPE }'))).toEqual(['api.tokenEnv: environment variable NOPE is not set']);
    expect(problems(yaml('api: { tokenEnv: T }'), { ...ENV, vars: { T: 'short' } })).toEqual([
      'api.tokenEnv: the token must be at least 16 bytes without white space (e.g. openssl rand -hex 32)',
    ]);
    const unreadable = problems(yaml('api: { tokenFile: /missing }'), { ...ENV, readFile: () => { throw new Error('ENOENT: no such file'); } });
    expect(unreadable).toEqual(['api.tokenFile: cannot read /missing: ENOENT: no such file']);
    expect(problems(yaml('api: { tokenFile: /a, tokenEnv: B }'), { ...ENV, vars: { B: TOKEN }, readFile: () => TOKEN })).toContain('api: tokenFile and tokenEnv are mutually exclusive');
    // Inline tokens do not exist: an unknown key, like any typo.
    expect(problems(yaml(`api: { listen: "0.0.0.0:9470", token: ${TOKEN} }`))[0]).toMatch(/^api\.token: unknown key "token"/);
    for (const p of problems(yaml('api: { tokenEnv: T }'), { ...ENV, vars: { T: 'short' } })) expect(p).not.toContain('short');
  });

  it('refuses a listen address without an explicit port', () => {
    expect(problems(yaml('api: { listen: "127.0.0.1" }'))).toEqual(['api.listen: must be "host:port", e.g. "127.0.0.1:9470", got the string "127.0.0.1"']);
  });

  it('--api HOST:PORT overrides api.listen (and is checked like it), also without the section', () => {
    expect(parseConfig(yaml('api: {}'), 'c.yaml', { ...ENV, apiListen: '127.0.0.2:9555' }).api?.listen).toEqual({ host: '127.0.0.2', port: 9555 });
    expect(parseConfig(yaml(''), 'c.yaml', { ...ENV, apiListen: '127.0.0.1:9555' }).api?.listen).toEqual({ host: '127.0.0.1', port: 9555 });
    expect(problems(yaml('api: {}'), { ...ENV, apiListen: '0.0.0.0:9555' })[0]).toMatch(/^api\.listen: .*token is required/);
  });
});

describe('CHAP secrets from a file or the environment', () => {
  const auth = (chap: string) => `    auth: { chap: { user: host, ${chap} } }`;
  const withAuth = (chap: string) => yaml('', auth(chap)).replace('    luns: { 0: r }\n\n', '    luns: { 0: r }\n');

  it('resolves secretFile and secretEnv into the secret', () => {
    const f = parseConfig(withAuth('secretFile: /run/secrets/chap'), 'c.yaml', { ...ENV, readFile: () => 'file-secret-0123\n' });
    expect(f.targets[0]?.auth?.chap).toEqual({ user: 'host', secret: 'file-secret-0123' });
    const e = parseConfig(withAuth('secretEnv: CHAP_SECRET'), 'c.yaml', { ...ENV, vars: { CHAP_SECRET: 'env-secret-01234' } });
    expect(e.targets[0]?.auth?.chap).toEqual({ user: 'host', secret: 'env-secret-01234' });
  });

  it('checks a resolved secret like an inline one, at the source field, without echoing it', () => {
    const short = problems(withAuth('secretEnv: S'), { ...ENV, vars: { S: 'tiny' } });
    expect(short).toEqual(['targets[0].auth.chap.secretEnv: CHAP secret is 4 bytes; RFC 7143 section 12.1.3 requires at least 12 (12-16 recommended)']);
    expect(problems(withAuth('secret: inline-secret-01, secretEnv: S'), { ...ENV, vars: { S: 'env-secret-01234' } })).toEqual([
      'targets[0].auth.chap: secret and secretEnv are mutually exclusive: give the secret one way',
    ]);
    expect(problems(withAuth('secretEnv: MISSING'))).toEqual(['targets[0].auth.chap.secretEnv: environment variable MISSING is not set']);
    expect(problems(yaml('', '    auth: { chap: { user: host } }'))).toEqual(['targets[0].auth.chap.secret: CHAP secret is required']);
  });

  it('still refuses a secret used in both directions when one comes from a file (RFC 7143 9.2.1)', () => {
    const both = `    auth:\n      chap: { user: host, secretFile: /s }\n      mutualChap: { user: tgt, secret: same-secret-0123 }`;
    const p = problems(yaml('', both), { ...ENV, readFile: () => 'same-secret-0123' });
    expect(p.some((x) => x.includes('mutualChap.secret'))).toBe(true);
  });
});
