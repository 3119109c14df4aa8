/**
 * Per connection rates (commands and bytes per second) for the admin API, from the
 * session workers' counters in shared memory: a sample of every connection slot in use,
 * once a second, and the difference between the last two. Reading a few thousand
 * doubles a second is all it costs; nothing is asked of the workers.
 */
import { CONNECTION_STRIDE, ConnectionField, MAX_CONNECTION_SLOTS, SESSION_HEADER, type SessionCountersView } from '../../shared/metrics/session-counters.ts';

interface Sample {
  readonly generation: number;
  readonly atMs: number;
  readonly commands: number;
  readonly dataIn: number;
  readonly dataOut: number;
}

export interface Rates {
  commandsPerSec: number;
  dataInBytesPerSec: number;
  dataOutBytesPerSec: number;
}

export const RATE_INTERVAL_MS = 1000;

export class ConnectionRates {
  readonly #views: readonly SessionCountersView[];
  #prev = new Map<string, Sample>();
  #cur = new Map<string, Sample>();
  readonly #timer: NodeJS.Timeout;

  constructor(views: readonly SessionCountersView[], intervalMs = RATE_INTERVAL_MS) {
    this.#views = views;
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.#timer.unref();
  }

  /** Take a sample now (the timer does it every interval). */
  sample(now: number = performance.now()): void {
    const next = new Map<string, Sample>();
    this.#views.forEach((v, w) => {
      for (let slot = 1; slot < MAX_CONNECTION_SLOTS; slot++) {
        const b = SESSION_HEADER + slot * CONNECTION_STRIDE;
        if (v.field(b + ConnectionField.IN_USE) !== 1) continue;
        next.set(`${w}:${slot}`, {
          generation: v.field(b + ConnectionField.GENERATION),
          atMs: now,
          commands: v.field(b + ConnectionField.COMMANDS),
          dataIn: v.field(b + ConnectionField.DATA_IN_BYTES),
          dataOut: v.field(b + ConnectionField.DATA_OUT_BYTES),
        });
      }
    });
    this.#prev = this.#cur;
    this.#cur = next;
  }

  /** Rates of connection slot `slot` of worker `worker` with generation `generation`; null until two samples exist. */
  rates(worker: number, slot: number, generation: number): Rates | null {
    const key = `${worker}:${slot}`;
    const a = this.#prev.get(key);
    const b = this.#cur.get(key);
    if (a === undefined || b === undefined || a.generation !== generation || b.generation !== generation) return null;
    const dt = (b.atMs - a.atMs) / 1000;
    if (dt <= 0) return null;
    return {
      commandsPerSec: (b.commands - a.commands) / dt,
      dataInBytesPerSec: (b.dataIn - a.dataIn) / dt,
      dataOutBytesPerSec: (b.dataOut - a.dataOut) / dt,
    };
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
