/**
 * Secrets kept out of the configuration file (issue 12): CHAP secrets from a file or an
 * environment variable, checked like inline ones and never echoed; a warning for a
 * world-readable file that holds secrets inline.
 */
import { describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, parseConfig, secretsExposure, type ConfigEnv } from '../../../src/supervisor/config/load.ts';

const ENV: ConfigEnv = { hostname: 'h', cores: 2, cwd: '/srv', vars: { CHAP_SECRET: 'from-the-environment' } };

function yaml(chap: string): string {
  return `
devices: [{ name: r, ram: { size: 1MiB } }]
targets:
  - iqn: iqn.2026-11.io.spindle:t
    portals: ['127.0.0.1:3260']
    luns: { 0: r }
    auth: { chap: ${chap} }
`;
}

function problems(text: string, env: ConfigEnv = ENV): string[] {
  try {
    parseConfig(text, 'c.yaml', env);
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.path}: ${i.message}`);
    throw err;
  }
}

describe('CHAP secrets from outside the file', () => {
  it('reads secretEnv and secretFile', () => {
    expect(parseConfig(yaml('{ user: u, secretEnv: CHAP_SECRET }'), 'c.yaml', ENV).targets[0]?.auth?.chap).toEqual({
      user: 'u',
      secret: 'from-the-environment',
    });
    const read = (p: string) => {
      if (p !== '/srv/chap.txt') throw new Error('ENOENT');
      return 'from-a-secret-file\n';
    };
    expect(parseConfig(yaml('{ user: u, secretFile: chap.txt }'), 'c.yaml', { ...ENV, readFile: read }).targets[0]?.auth?.chap?.secret).toBe(
      'from-a-secret-file',
    );
  });

  it('checks them like inline secrets, never echoing the value, and wants exactly one source', () => {
    const short = problems(yaml('{ user: u, secretEnv: SHORT }'), { ...ENV, vars: { SHORT: 'tiny' } });
    expect(short).toEqual(['targets[0].auth.chap.secretEnv: CHAP secret is 4 bytes; RFC 7143 section 12.1.3 requires at least 12 (12-16 recommended)']);
    expect(short.join()).not.toContain('tiny');
    expect(problems(yaml('{ user: u, secretEnv: NOPE }'))).toEqual(['targets[0].auth.chap.secretEnv: environment variable NOPE is not set']);
    expect(problems(yaml('{ user: u }'))).toEqual(['targets[0].auth.chap.secret: CHAP secret is required']);
    expect(problems(yaml("{ user: u, secret: 'averylongsecret', secretEnv: CHAP_SECRET }"))).toEqual([
      'targets[0].auth.chap: secret and secretEnv are mutually exclusive: give the secret one way',
    ]);
  });
});

describe('world-readable configuration files with inline secrets', () => {
  it('warns, naming the secrets by path; not for 0600 files or files without inline secrets', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'spindle-secrets-'));
    try {
      const f = path.join(dir, 'c.yaml');
      writeFileSync(f, yaml("{ user: u, secret: 'averylongsecret' }"));
      chmodSync(f, 0o644);
      expect(await secretsExposure(f)).toContain('targets[0].auth.chap.secret');
      chmodSync(f, 0o600);
      expect(await secretsExposure(f)).toBeNull();
      writeFileSync(f, yaml('{ user: u, secretEnv: CHAP_SECRET }'));
      chmodSync(f, 0o644);
      expect(await secretsExposure(f)).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
