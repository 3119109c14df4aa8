/**
 * Failed-authentication throttle: slows down CHAP secret guessing (RFC 7143 9.2.1 notes
 * that CHAP over an unencrypted link is open to dictionary attacks; RFC 1994 section 2.3
 * leaves retry policy to the authenticator). Pure: no timers, no I/O; time is passed in.
 *
 * Failures are counted per key, the pair (InitiatorName, remote IP address). The
 * connection code holds each failed Login Response back for the delay `failure()`
 * returns, then sends it and closes:
 *
 *   failures in a row   1      2    3    4    5     6     7+
 *   delay (defaults)    0.5 s  1 s  2 s  4 s  8 s   16 s  30 s (cap)
 *
 * - A successful login for the key forgets it (`success()`).
 * - A quiet key decays: each `quietMs` without a failure takes one step off the count, so
 *   an operator who mistyped a secret yesterday starts over, while a guesser that waits
 *   for every held response (never quiet for long) stays at the cap.
 * - Memory is bounded: at most `maxEntries` keys, least recently failed evicted first
 *   (a Map in insertion order; a failure moves its key to the end).
 *
 * The delay is a per-connection hold, not a lock-out: a correct login is never refused,
 * only failed ones are slowed. One instance per node, owned by the supervisor
 * (supervisor.ts): session workers ask it for the delay, so an initiator's connections that
 * land on different session workers are counted together.
 */

export interface AuthThrottleOptions {
  /** Cap of the delay (ms). 0 disables the throttle: every failure returns 0. */
  readonly maxDelayMs: number;
  /** Delay for the first failure (ms); it doubles with every further one. Default 500. */
  readonly baseDelayMs?: number;
  /** A failure-free period (ms) that takes one step off a key's count. Default 60 s. */
  readonly quietMs?: number;
  /** Keys remembered at most. Default 4096. */
  readonly maxEntries?: number;
}

export const AuthThrottleDefaults = {
  baseDelayMs: 500,
  quietMs: 60_000,
  maxEntries: 4096,
} as const;

interface Entry {
  /** Failures in a row, after decay. */
  failures: number;
  /** Time of the last failure (ms, caller's clock). */
  lastMs: number;
}

export class AuthThrottle {
  readonly #maxDelayMs: number;
  readonly #baseDelayMs: number;
  readonly #quietMs: number;
  readonly #maxEntries: number;
  /** Insertion order = least recently failed first (the LRU order). */
  readonly #entries = new Map<string, Entry>();

  constructor(opts: AuthThrottleOptions) {
    const nonNegative = (n: number, what: string): number => {
      if (!Number.isFinite(n) || n < 0) throw new RangeError(`AuthThrottle: ${what} must be >= 0, got ${n}`);
      return n;
    };
    this.#maxDelayMs = nonNegative(opts.maxDelayMs, 'maxDelayMs');
    this.#baseDelayMs = nonNegative(opts.baseDelayMs ?? AuthThrottleDefaults.baseDelayMs, 'baseDelayMs');
    this.#quietMs = Math.max(1, nonNegative(opts.quietMs ?? AuthThrottleDefaults.quietMs, 'quietMs'));
    this.#maxEntries = Math.max(1, Math.floor(opts.maxEntries ?? AuthThrottleDefaults.maxEntries));
  }

  /** A throttle configured from `iscsi.authBackoffMaxSec` (0 disables it). */
  static fromConfig(authBackoffMaxSec: number): AuthThrottle {
    return new AuthThrottle({ maxDelayMs: authBackoffMaxSec * 1000 });
  }

  /** Whether the throttle ever delays anything. */
  get enabled(): boolean {
    return this.#maxDelayMs > 0;
  }

  /** Keys currently remembered. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Record a failed authentication for `key` at `nowMs`; returns how long (ms) to hold the
   * failure Login Response before sending it and closing the connection.
   */
  failure(key: string, nowMs: number): number {
    if (!this.enabled) return 0;
    const e = this.#entries.get(key);
    let failures = 1;
    if (e !== undefined) {
      failures = this.#decayed(e, nowMs) + 1;
      this.#entries.delete(key); // re-inserted below: most recently failed goes last
    }
    this.#entries.set(key, { failures, lastMs: nowMs });
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
    return this.#delayFor(failures);
  }

  /** A login for `key` succeeded: forget its failures. */
  success(key: string): void {
    this.#entries.delete(key);
  }

  /** Failures in a row `key` has at `nowMs` (after decay); 0 when unknown. For logs. */
  failures(key: string, nowMs: number): number {
    const e = this.#entries.get(key);
    return e === undefined ? 0 : this.#decayed(e, nowMs);
  }

  #decayed(e: Entry, nowMs: number): number {
    // A clock that went backwards counts as no time elapsed.
    const steps = Math.floor(Math.max(0, nowMs - e.lastMs) / this.#quietMs);
    return Math.max(0, e.failures - steps);
  }

  #delayFor(failures: number): number {
    if (failures <= 0) return 0;
    // base * 2^(n-1), computed without overflow: past 2^30 the cap has long been reached.
    const exp = Math.min(failures - 1, 30);
    return Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** exp);
  }
}
