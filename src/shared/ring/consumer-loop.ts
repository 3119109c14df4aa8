/**
 * The consumer side of the doorbell protocol (doorbell.ts), as the loop every consumer
 * thread (LUN worker, session worker) runs: drain, announce sleep, drain again (a
 * producer may have published before it could see the flag), then either yield one
 * event-loop turn and go on (work arrived: stay awake, producers skip the notify) or
 * park until rung.
 *
 * Written as a small state machine with handlers bound once rather than an async loop:
 * an `await new Promise(setImmediate)` per batch was a promise and a closure per
 * command at queue depth 1 (issue 13, the hot-path rules in DESIGN.md).
 *
 * Input from elsewhere. A session worker also wakes for socket data while parked. Left
 * as is, a LUN worker completing a command during that turn would still see the flag
 * up and pay a futex wake (and the session thread a wake-up for nothing) although the
 * session worker collects the completion itself by polling. `inputStarts()` lowers the
 * flag for such a turn and `inputEnds()` raises it again and drains, which keeps the
 * lost-wake-up argument of doorbell.ts: a producer that saw the flag down published
 * before the drain in inputEnds(), one that saw it up rings the pending wait.
 *
 * Hot waits. Parking with Atomics.waitAsync makes every wake-up a task posted to the
 * thread's event loop (an eventfd write, an epoll return, a promise), which at queue
 * depth 1 was a large share of a command's CPU and latency (issue 13). A LUN worker
 * whose commands all completed (nothing of its own is waiting for the event loop, such
 * as file I/O) may instead block in Atomics.wait for the next command, for at most
 * HOT_WAIT_MS after the last one: a blocked thread spends no CPU, and the producer's
 * notify is a plain futex wake. It returns to the event loop at least every
 * HOT_SLICE_MS (control messages, timers, the heartbeat) and parks the usual way once
 * no command came for HOT_WAIT_MS, so an idle worker costs nothing.
 */
import type { Doorbell } from './doorbell.ts';

/** Block for the next item at most this long after the last one (then park asynchronously). */
export const HOT_WAIT_MS = 2;
/** Go back to the event loop at least this often while blocking for items. */
export const HOT_SLICE_MS = 1;

export class ConsumerLoop {
  readonly #bell: Doorbell;
  readonly #drain: () => number;
  #running = false;
  /** A wait on the bell is pending (the thread sleeps unless some other input runs). */
  #parked = false;
  /** When the last item was taken (performance.now()), for the hot wait. */
  #lastItemAt = -Infinity;
  #done: (() => void) | null = null;
  readonly #turnFn = (): void => this.#turn();
  readonly #wokenFn = (): void => {
    this.#parked = false;
    this.#bell.awake();
    this.#turn();
  };

  /** May the thread block for the next item now? (null: never, e.g. a socket thread) */
  readonly #mayBlock: (() => boolean) | null;

  /**
   * `drain` handles what is on the rings and returns how many items it took. `mayBlock`,
   * if given, says whether the thread has nothing else to wait for (see Hot waits).
   */
  constructor(bell: Doorbell, drain: () => number, mayBlock: (() => boolean) | null = null) {
    this.#bell = bell;
    this.#drain = drain;
    this.#mayBlock = mayBlock;
  }

  /** Consume until stop(); resolves when the loop has ended. */
  run(): Promise<void> {
    this.#running = true;
    return new Promise((resolve) => {
      this.#done = resolve;
      this.#turn();
    });
  }

  /** End the loop (a parked loop is woken to notice). */
  stop(): void {
    this.#running = false;
    this.#bell.wake();
  }

  /** Another input (socket data) runs on this thread: producers need not ring meanwhile. */
  inputStarts(): void {
    if (this.#parked) this.#bell.awake();
  }

  /** That input is handled: announce sleep again and take what arrived without a ring. */
  inputEnds(): void {
    if (!this.#parked) return;
    this.#bell.prepareSleep();
    this.#drain();
  }

  #turn(): void {
    if (!this.#running) {
      const done = this.#done;
      this.#done = null;
      done?.();
      return;
    }
    const took = this.#drain();
    let seen = this.#bell.prepareSleep();
    if (this.#drain() > 0) {
      this.#bell.awake();
      // More arrived while the first batch ran: yield so other event-loop work (socket
      // I/O, fs callbacks) interleaves with batches, then go round again.
      setImmediate(this.#turnFn);
      return;
    }
    if (this.#mayBlock !== null) {
      // Hot while the last item is less than HOT_WAIT_MS old, counted across slices: a
      // turn that ends a slice usually finds nothing new, and parking asynchronously
      // there would make the next command's ring a task posted to this thread's loop.
      const now = performance.now();
      if (took > 0) this.#lastItemAt = now;
      let timeout = HOT_WAIT_MS - (now - this.#lastItemAt);
      if (timeout > 0 && this.#mayBlock()) {
        // Hot: block for the next item (see Hot waits), draining as they come, until the
        // slice ends, the thread has something else to wait for, or none came in time.
        const sliceEnd = now + HOT_SLICE_MS;
        while (this.#bell.waitSync(seen, timeout) !== 'timed-out') {
          this.#bell.awake();
          this.#drain();
          seen = this.#bell.prepareSleep();
          const at = performance.now();
          this.#lastItemAt = at;
          timeout = HOT_WAIT_MS;
          if (this.#drain() > 0 || !this.#running || at >= sliceEnd || !this.#mayBlock()) {
            this.#bell.awake();
            setImmediate(this.#turnFn);
            return;
          }
        }
      }
    }
    // Nothing arrived since the flag went up: park at once. Parking yields to the event
    // loop as well, so a productive batch followed by an empty re-check needs no extra
    // turn (one event-loop iteration per command saved at queue depth 1).
    const r = this.#bell.wait(seen);
    if (typeof r === 'string') {
      // Rung between prepareSleep and wait: go round again (after a yield).
      this.#bell.awake();
      setImmediate(this.#turnFn);
      return;
    }
    this.#parked = true;
    void r.then(this.#wokenFn);
  }
}
