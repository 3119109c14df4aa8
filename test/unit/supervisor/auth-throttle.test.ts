import { describe, expect, it } from 'vitest';
import { AuthThrottle, AuthThrottleDefaults } from '../../../src/supervisor/auth-throttle.ts';
import { authThrottleKey } from '../../../src/shared/iscsi/auth-key.ts';

const KEY = authThrottleKey('iqn.1993-08.org.debian:01:cafe', '192.0.2.7');
const T0 = 1_000_000;

describe('AuthThrottle', () => {
  it('backs off exponentially from 0.5 s and caps at the configured maximum', () => {
    const t = AuthThrottle.fromConfig(30);
    const delays = Array.from({ length: 9 }, (_, i) => t.failure(KEY, T0 + i * 1000));
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    expect(t.failures(KEY, T0 + 9000)).toBe(9);
  });

  it('never overflows on very long runs of failures', () => {
    const t = new AuthThrottle({ maxDelayMs: 30_000, quietMs: 10 ** 12 });
    let last = 0;
    for (let i = 0; i < 2000; i++) last = t.failure(KEY, T0 + i);
    expect(last).toBe(30_000);
  });

  it('forgets a key after a successful login', () => {
    const t = AuthThrottle.fromConfig(30);
    t.failure(KEY, T0);
    t.failure(KEY, T0 + 1);
    t.success(KEY);
    expect(t.failures(KEY, T0 + 2)).toBe(0);
    expect(t.failure(KEY, T0 + 3)).toBe(500);
  });

  it('decays one step per quiet period, and starts over after a long quiet one', () => {
    const q = AuthThrottleDefaults.quietMs;
    const t = new AuthThrottle({ maxDelayMs: 30_000 });
    for (let i = 0; i < 5; i++) t.failure(KEY, T0); // 5 in a row: next would be 16 s
    expect(t.failures(KEY, T0 + q - 1)).toBe(5);
    expect(t.failures(KEY, T0 + q)).toBe(4);
    // Two quiet periods later: 3 left, so this failure is the 4th: 4 s.
    expect(t.failure(KEY, T0 + 2 * q)).toBe(4000);
    // Far in the future: a fresh start.
    expect(t.failure(KEY, T0 + 2 * q + 100 * q)).toBe(500);
  });

  it('a guesser that waits for every held response stays at the cap', () => {
    const t = AuthThrottle.fromConfig(30);
    let now = T0;
    let delay = 0;
    for (let i = 0; i < 50; i++) {
      delay = t.failure(KEY, now);
      now += delay + 50; // the response arrives, the next attempt follows at once
    }
    expect(delay).toBe(30_000);
  });

  it('keys are per (initiator name, address); names compare case-insensitively', () => {
    const t = AuthThrottle.fromConfig(30);
    t.failure(authThrottleKey('iqn.a', '192.0.2.1'), T0);
    expect(t.failure(authThrottleKey('IQN.A', '192.0.2.1'), T0)).toBe(1000);
    expect(t.failure(authThrottleKey('iqn.a', '192.0.2.2'), T0)).toBe(500);
    expect(t.failure(authThrottleKey('iqn.b', '192.0.2.1'), T0)).toBe(500);
    // Address and name cannot be confused by concatenation.
    expect(authThrottleKey('iqn.a1', '2.3.4.5')).not.toBe(authThrottleKey('iqn.a', '12.3.4.5'));
  });

  it('bounds memory: the least recently failed key is evicted first', () => {
    const t = new AuthThrottle({ maxDelayMs: 30_000, maxEntries: 3 });
    const k = (i: number): string => authThrottleKey(`iqn.i${i}`, '192.0.2.1');
    t.failure(k(1), T0);
    t.failure(k(2), T0);
    t.failure(k(3), T0);
    t.failure(k(1), T0 + 1); // k1 is now the most recent
    t.failure(k(4), T0 + 2); // evicts k2
    expect(t.size).toBe(3);
    expect(t.failures(k(2), T0 + 3)).toBe(0);
    expect(t.failures(k(1), T0 + 3)).toBe(2);
    expect(t.failures(k(3), T0 + 3)).toBe(1);
    for (let i = 0; i < 10_000; i++) t.failure(k(100 + i), T0 + 10 + i);
    expect(t.size).toBe(3);
  });

  it('authBackoffMaxSec 0 disables the throttle and remembers nothing', () => {
    const t = AuthThrottle.fromConfig(0);
    expect(t.enabled).toBe(false);
    for (let i = 0; i < 5; i++) expect(t.failure(KEY, T0 + i)).toBe(0);
    expect(t.size).toBe(0);
  });

  it('a small cap clamps even the first delay; a clock going backwards is harmless', () => {
    const t = new AuthThrottle({ maxDelayMs: 300 });
    expect(t.failure(KEY, T0)).toBe(300);
    expect(t.failure(KEY, T0 - 10_000)).toBe(300);
    expect(t.failures(KEY, T0 - 20_000)).toBe(2);
  });

  it('rejects nonsense options', () => {
    expect(() => new AuthThrottle({ maxDelayMs: -1 })).toThrow(RangeError);
    expect(() => new AuthThrottle({ maxDelayMs: Number.NaN })).toThrow(RangeError);
  });
});
