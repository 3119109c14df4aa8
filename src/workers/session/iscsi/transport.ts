/**
 * What an iSCSI connection uses of its byte stream: a `net.Socket` on a session worker,
 * a stream stand-in in unit tests (test/helpers/fake-connection.ts). Naming only these
 * members keeps the connection testable without a real socket and documents exactly
 * which socket behaviour it relies on:
 *
 *  - input arrives as 'data' events and stops while paused (backpressure, held logins);
 *  - `write` returns false once the stream's buffer is over its high-water mark, and the
 *    stream emits 'drain' when that buffer has been flushed (Node's Writable contract);
 *    the callback of each write runs, in write order, once that chunk is flushed;
 *  - cork/uncork batch the writes of one event-loop turn into one writev;
 *  - 'close' ends the connection, whoever closed it.
 */
export interface Transport {
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  setNoDelay(noDelay?: boolean): unknown;
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'close' | 'drain', listener: () => void): unknown;
  pause(): unknown;
  resume(): unknown;
  write(chunk: Uint8Array, callback: (err?: Error | null) => void): boolean;
  write(chunk: Uint8Array): boolean;
  cork(): void;
  uncork(): void;
  /** Half-close: queued writes still go out, then FIN. */
  end(): unknown;
  /** Close at once, dropping anything queued. */
  destroy(): unknown;
}

/** The output half, all the PDU writer needs. */
export type TransportOutput = Pick<Transport, 'write' | 'cork' | 'uncork'>;
