/**
 * Cluster stream events are checked against their shape when read (events.ts): a node of
 * another version, or an entry written by hand, is reported and skipped, never applied in
 * part. Here for the hold and release events of cluster-wide exclusive commands, and for
 * entries that are not events at all.
 */
import { describe, expect, it } from 'vitest';
import { decodeEvent, encodeEvent, holdRef } from '../../../src/supervisor/cluster/events.ts';

describe('cluster events', () => {
  it('hold and release round-trip', () => {
    const hold = { k: 'hold', o: 'a', lu: '600a0b80', id: 'token-1' } as const;
    const release = { k: 'release', o: 'a', lu: '600a0b80', id: 'token-1' } as const;
    expect(decodeEvent(encodeEvent(hold))).toEqual(hold);
    expect(decodeEvent(encodeEvent(release))).toEqual(release);
    expect(holdRef('token-1')).toBe('hold:token-1');
  });

  it('refuses malformed hold and release entries with a description', () => {
    for (const bad of [
      '{"k":"hold","o":"a","lu":"600a0b80"}', // no id
      '{"k":"hold","o":"a","lu":"600a0b80","id":7}', // id not a string
      '{"k":"release","o":"a","id":"token-1"}', // no lu
      '{"k":"release","o":null,"lu":"600a0b80","id":"token-1"}', // origin not a string
      '{"k":"hold-all","o":"a","lu":"600a0b80","id":"token-1"}', // unknown kind
      '["hold","a","600a0b80","token-1"]', // not an object
      '{"k":"hold","o":"a","lu":"600a', // truncated JSON
      '',
    ]) {
      const r = decodeEvent(bad);
      expect(typeof r, bad).toBe('string');
    }
  });
});
