/**
 * A worker's doorbell: how producers wake a consumer that drains several rings.
 *
 * Layout (Int32Array over a SharedArrayBuffer, each word on its own 64-byte line so
 * producers ringing it do not false-share with the sleeping flag's reader):
 *
 *   word 0  (byte 0)   seq       bumped by a producer that found the consumer asleep
 *   word 16 (byte 64)  sleeping  1 while the consumer is (about to be) parked
 *
 * Protocol (all Atomics operations are sequentially consistent, which is what makes
 * the lost-wake-up argument below hold):
 *   consumer: drain all rings -> store sleeping=1 -> drain again (a producer may have
 *             published before it could see sleeping=1) -> if still empty, read seq and
 *             waitAsync(seq, value) -> on wake store sleeping=0 and drain.
 *   producer: publish the entry -> if sleeping==1: add(seq, 1) and notify(seq).
 * A producer that publishes after the consumer's second drain sees sleeping=1 and
 * bumps seq, so the consumer's waitAsync either returns "not-equal" at once or is
 * woken by notify. A producer that skips the notify (consumer awake) is safe because
 * an awake consumer drains again before it sleeps.
 */
export const DOORBELL_BYTES = 128;
const SEQ = 0;
const SLEEPING = 16;

export class Doorbell {
  readonly sab: SharedArrayBuffer;
  private readonly words: Int32Array;

  constructor(sab?: SharedArrayBuffer) {
    this.sab = sab ?? new SharedArrayBuffer(DOORBELL_BYTES);
    this.words = new Int32Array(this.sab);
  }

  /** Producer side: wake the consumer if it is parked. Cheap when it is awake. */
  ring(): void {
    if (Atomics.load(this.words, SLEEPING) === 1) {
      Atomics.add(this.words, SEQ, 1);
      Atomics.notify(this.words, SEQ, 1);
    }
  }

  /** Wake the consumer whether or not it looks parked (to stop its loop; not the hot path). */
  wake(): void {
    Atomics.add(this.words, SEQ, 1);
    Atomics.notify(this.words, SEQ);
  }

  /** Consumer side: announce the intent to sleep; the caller must re-check its rings after this. */
  prepareSleep(): number {
    Atomics.store(this.words, SLEEPING, 1);
    return Atomics.load(this.words, SEQ);
  }

  /**
   * Consumer side: park until rung (or until seq moved since prepareSleep). Note that a
   * pending Atomics.waitAsync does not keep the thread's event loop alive: the caller
   * must hold some other ref'd handle (e.g. a parentPort listener) while parked.
   */
  wait(seenSeq: number): Promise<'ok' | 'not-equal' | 'timed-out'> | 'not-equal' | 'timed-out' {
    const r = Atomics.waitAsync(this.words, SEQ, seenSeq);
    return r.async ? r.value : r.value;
  }

  /**
   * Consumer side: block this thread until rung, for at most `timeoutMs` (a futex wait:
   * no CPU, and woken without an event-loop turn). Only for a thread with nothing else
   * to do meanwhile (see ConsumerLoop).
   */
  waitSync(seenSeq: number, timeoutMs: number): 'ok' | 'not-equal' | 'timed-out' {
    return Atomics.wait(this.words, SEQ, seenSeq, timeoutMs);
  }

  /** Consumer side: awake again. */
  awake(): void {
    Atomics.store(this.words, SLEEPING, 0);
  }
}
