/**
 * Node-wide session coordination, owned by the supervisor because it spans session
 * workers: which worker holds each session identity (session reinstatement, RFC 7143
 * 6.3.5, and connection reinstatement across workers, 6.3.4), and the failed-
 * authentication throttle (auth-throttle.ts), so an initiator's retries landing on
 * different session workers still add up. Nothing here is on the I/O path.
 */
import { AuthThrottle } from './auth-throttle.ts';

export class SessionDirectory {
  readonly #owners = new Map<string, { worker: number; tsih: number }>();
  readonly #throttle: AuthThrottle;
  /** Tell session worker `w` that its session `key` was reinstated elsewhere. */
  readonly #reinstate: (w: number, key: string) => void;

  constructor(authBackoffMaxSec: number, reinstate: (w: number, key: string) => void) {
    this.#throttle = AuthThrottle.fromConfig(authBackoffMaxSec);
    this.#reinstate = reinstate;
  }

  /** A session with identity `key` reached full feature phase on worker `w`. */
  sessionUp(w: number, key: string, tsih: number): void {
    const prev = this.#owners.get(key)?.worker;
    this.#owners.set(key, { worker: w, tsih });
    if (prev !== undefined && prev !== w) this.#reinstate(prev, key);
  }

  sessionDown(w: number, key: string): void {
    if (this.#owners.get(key)?.worker === w) this.#owners.delete(key);
  }

  /** Where the session with this identity lives (worker -1: nowhere). */
  find(key: string): { worker: number; tsih: number } {
    return this.#owners.get(key) ?? { worker: -1, tsih: 0 };
  }

  /** Forget every session of worker `w` (it is gone). */
  workerGone(w: number): void {
    for (const [key, o] of this.#owners) if (o.worker === w) this.#owners.delete(key);
  }

  authFailure(key: string, now = Date.now()): { delayMs: number; failures: number } {
    const delayMs = this.#throttle.failure(key, now);
    return { delayMs, failures: this.#throttle.failures(key, now) };
  }

  authSuccess(key: string): void {
    this.#throttle.success(key);
  }

  get sessions(): number {
    return this.#owners.size;
  }
}
