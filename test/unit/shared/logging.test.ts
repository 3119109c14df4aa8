/**
 * Log lines never carry secrets (issue 12): CHAP secrets, Redis passwords and API tokens
 * are redacted however deep in a logged object they sit.
 */
import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { createLogger } from '../../../src/shared/logging.ts';

describe('logging', () => {
  it('redacts secret, password and token fields at any depth up to four', () => {
    let out = '';
    const destination = new Writable({
      write(chunk: Buffer, _enc, cb) {
        out += chunk.toString();
        cb();
      },
    });
    const log = createLogger({ name: 't', level: 'info', pretty: false, destination: destination as never });
    log.info({ secret: 's0', auth: { chap: { user: 'u', secret: 's1' } }, redis: { password: 'p1' }, api: { token: 't1' }, deep: { a: { b: { secret: 's2' } } } }, 'x');
    for (const v of ['s0', 's1', 'p1', 't1', 's2']) expect(out).not.toContain(`"${v}"`);
    expect(out).toContain('"user":"u"');
    expect(out).toContain('[redacted]');
  });
});
