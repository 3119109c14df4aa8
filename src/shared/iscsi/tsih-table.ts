/**
 * Node-wide TSIH table (RFC 7143 11.12.6, 11.13.4: the Target Session Identifying Handle
 * is assigned by the target, non-zero, and names one live session).
 *
 * One SharedArrayBuffer shared by every session worker, one byte per TSIH value:
 *
 *   entry[tsih] = 0            free (entry 0 is never used: TSIH 0 means "new session")
 *                 worker + 1   in use by a session on that session worker
 *
 * Any worker may allocate any free value (compare-and-exchange 0 -> its own mark), so
 * TSIHs are unique across the node without messages. A session that moves to another
 * worker (connection reinstatement landing on another worker, see login-exchange.ts)
 * takes its TSIH along with one compare-and-exchange from the old owner's mark to the new
 * one; the old owner's later release then fails harmlessly, because it only ever frees
 * an entry that still carries its own mark.
 *
 * Within a worker, several connections can hold one TSIH at once (the old and the new
 * connection of a reinstated session), so each worker counts its holders and frees the
 * entry with the last one. Not on the I/O path: touched at login and at session end.
 */

/** TSIH values are 16 bits; 0 is reserved. */
export const TSIH_VALUES = 0x10000;

export class TsihTable {
  readonly sab: SharedArrayBuffer;
  private readonly marks: Uint8Array;
  private readonly mark: number;
  /** Holders on this worker per TSIH it owns. */
  private readonly holders = new Map<number, number>();
  private cursor: number;

  /** The shared memory for a node's table (the supervisor creates it once). */
  static createBuffer(): SharedArrayBuffer {
    return new SharedArrayBuffer(TSIH_VALUES);
  }

  /**
   * Free every TSIH session worker `worker` held (it died: its sessions are gone). The
   * supervisor calls this before it starts the worker's replacement.
   */
  static releaseAllOf(sab: SharedArrayBuffer, worker: number): number {
    const marks = new Uint8Array(sab);
    let n = 0;
    for (let tsih = 1; tsih < TSIH_VALUES; tsih++) if (Atomics.compareExchange(marks, tsih, worker + 1, 0) === worker + 1) n++;
    return n;
  }

  /** `worker`: this session worker's index (0..254). */
  constructor(sab: SharedArrayBuffer, worker: number) {
    this.sab = sab;
    this.marks = new Uint8Array(sab);
    this.mark = worker + 1;
    // Workers start scanning at different places so they rarely contend for a value.
    this.cursor = 1 + ((worker * 4099) % (TSIH_VALUES - 1));
  }

  /** A fresh TSIH held once by this worker, or 0 when all 65535 are in use. */
  allocate(): number {
    for (let n = 0; n < TSIH_VALUES - 1; n++) {
      const tsih = this.cursor;
      this.cursor = tsih === TSIH_VALUES - 1 ? 1 : tsih + 1;
      if (
        Atomics.load(this.marks, tsih) === 0 &&
        Atomics.compareExchange(this.marks, tsih, 0, this.mark) === 0
      ) {
        this.holders.set(tsih, 1);
        return tsih;
      }
    }
    return 0;
  }

  /** The session worker whose session holds `tsih`, or -1 when it is free. */
  owner(tsih: number): number {
    if (tsih <= 0 || tsih >= TSIH_VALUES) return -1;
    return Atomics.load(this.marks, tsih) - 1;
  }

  /**
   * Hold `tsih` here too: another holder on this worker, or the TSIH moving from worker
   * `from`'s session to this worker. False when `from` does not hold it (any more).
   */
  adopt(tsih: number, from: number): boolean {
    if (tsih <= 0 || tsih >= TSIH_VALUES) return false;
    if (from === this.mark - 1) {
      const n = this.holders.get(tsih);
      if (n === undefined || Atomics.load(this.marks, tsih) !== this.mark) return false;
      this.holders.set(tsih, n + 1);
      return true;
    }
    if (Atomics.compareExchange(this.marks, tsih, from + 1, this.mark) !== from + 1) return false;
    // A holder from before the TSIH went away may still be here (its connection not yet
    // closed): it keeps its count, and its release must not free the value under us.
    this.holders.set(tsih, (this.holders.get(tsih) ?? 0) + 1);
    return true;
  }

  /** One holder on this worker is done with `tsih`; the last one frees it (if still ours). */
  release(tsih: number): void {
    const n = this.holders.get(tsih);
    if (n === undefined) return;
    if (n > 1) {
      this.holders.set(tsih, n - 1);
      return;
    }
    this.holders.delete(tsih);
    Atomics.compareExchange(this.marks, tsih, this.mark, 0);
  }
}
