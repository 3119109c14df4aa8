/**
 * One node's connection to the cluster's Redis: the two clients (commands; blocking
 * stream reads), the epoch marker that detects a Redis that lost its data, the event
 * stream (publish; read loop), and acknowledgement waits.
 *
 * Epoch (DESIGN.md "Redis data loss"): a random marker created with the cluster state
 * and remembered by every node in its stateDir. A Redis that answers without the marker,
 * or with one this node never saw replaced through `spindle cluster recover`, has lost
 * data (restarted empty, or restored from an old snapshot): the node must never read that
 * as "no reservations". It says so in the log and refuses PR OUT until an operator acts.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import type { Logger } from '../../shared/logging.ts';
import type { ClusterRedisConfig } from '../../shared/cluster-config.ts';
import { createClient } from './redis-connection.ts';
import { ClusterKeys } from './keys.ts';
import { PUBLISH } from './scripts.ts';
import { decodeEvent, encodeEvent, type ClusterEvent } from './events.ts';

/** Entries kept in the event stream (approximate trim). */
export const STREAM_MAXLEN = 10_000;
/** How long a blocking stream read waits before it loops (ms). */
const READ_BLOCK_MS = 1000;

export type EpochVerdict =
  /** Redis holds the marker this node knows (or the node adopted it on first contact). */
  | { readonly kind: 'ok'; readonly epoch: string }
  /** Redis lost data: no marker, or an unknown one. */
  | { readonly kind: 'lost'; readonly found: string | null; readonly known: string };

export interface LinkOptions {
  readonly clusterId: string;
  readonly node: string;
  readonly redis: ClusterRedisConfig;
  /** Directory for this node's cluster memory (the epoch it knows). */
  readonly stateDir: string;
  readonly commandTimeoutMs: number;
  readonly log: Logger;
}

/**
 * One change waiting for acknowledgements. Acks are recorded from the moment the wait
 * is registered (before the change is published), so a peer added once the change is in
 * (found live in the same atomic step: pr-store.ts) is not waited for if it already
 * answered. It resolves once armed and nobody is pending.
 */
class AckWait {
  readonly pending: Set<string>;
  readonly #acked = new Set<string>();
  #armed = false;
  #resolve!: () => void;
  readonly done = new Promise<void>((r) => (this.#resolve = r));

  constructor(peers: Set<string>) {
    this.pending = peers;
  }

  acked(node: string): void {
    this.#acked.add(node);
    this.drop(node);
  }

  add(node: string): void {
    if (!this.#acked.has(node)) this.pending.add(node);
  }

  drop(node: string): void {
    this.pending.delete(node);
    this.#check();
  }

  arm(): void {
    this.#armed = true;
    this.#check();
  }

  /** Give up (the link closes): release the waiter. */
  release(): void {
    this.released = true;
    this.#resolve();
  }

  /** The link closed under the wait (`done` resolved without the acknowledgements). */
  released = false;

  get settled(): boolean {
    return this.#armed && this.pending.size === 0;
  }

  #check(): void {
    if (this.settled) this.#resolve();
  }
}

export type { AckWait };

export class ClusterLink {
  readonly keys: ClusterKeys;
  readonly node: string;
  readonly cmd: Redis;
  /**
   * Reservation changes, on a connection of their own: Redis WAIT counts the writes of
   * the connection it is sent on, and blocks that connection while it waits, which must
   * not hold up the lease renewals on `cmd` (pr-store.ts).
   */
  readonly changes: Redis;
  /** How long a WAIT for replicas may block `changes` (ms). */
  readonly replicaWaitMs: number;
  readonly #reader: Redis;
  readonly #log: Logger;
  readonly #epochFile: string;
  #epoch: string | null = null;
  #lastId = '$';
  #reading = false;
  #closed = false;
  readonly #acks = new Map<string, AckWait>();
  /** Every event read from the stream, including this node's own. */
  onEvent: (e: ClusterEvent, id: string) => void = () => {};
  /** The command connection was lost and is back: the caller resynchronizes. */
  onReconnect: () => void = () => {};

  constructor(o: LinkOptions) {
    this.keys = new ClusterKeys(o.clusterId);
    this.node = o.node;
    this.#log = o.log;
    this.#epochFile = path.join(o.stateDir, 'cluster', `${o.clusterId}.epoch`);
    this.cmd = createClient(o.redis, { commandTimeoutMs: o.commandTimeoutMs, clientName: `spindle-${o.node}` });
    // WAIT answers after at most replicaWaitMs: the client's timeout must be longer.
    this.replicaWaitMs = o.commandTimeoutMs;
    this.changes = createClient(o.redis, { commandTimeoutMs: 2 * o.commandTimeoutMs, clientName: `spindle-${o.node}-changes` });
    // The reader blocks up to READ_BLOCK_MS per call: its timeout must be longer.
    this.#reader = createClient(o.redis, { commandTimeoutMs: READ_BLOCK_MS + o.commandTimeoutMs, clientName: `spindle-${o.node}-events` });
    let wasReady = false;
    let lost = false;
    this.cmd.on('ready', () => {
      if (wasReady && lost) {
        lost = false;
        this.onReconnect();
      }
      wasReady = true;
    });
    this.cmd.on('close', () => {
      if (wasReady) lost = true;
    });
    // ioredis reports connection errors as events; the heartbeat and requests see them too.
    this.cmd.on('error', (err: Error) => this.#log.debug({ err: err.message }, 'redis: command connection error'));
    this.#reader.on('error', (err: Error) => this.#log.debug({ err: err.message }, 'redis: event connection error'));
    this.changes.on('error', (err: Error) => this.#log.debug({ err: err.message }, 'redis: change connection error'));
    this.cmd.defineCommand('spindlePublish', { numberOfKeys: 2, lua: PUBLISH });
  }

  /**
   * Connect the clients (rejects when Redis cannot be reached; call again to retry). A
   * client whose first attempt failed reconnects on its own (retryStrategy): a second
   * connect() on it would be refused ("already connecting/connected") or race its own
   * reconnection, so such a client is waited for instead.
   */
  async connect(): Promise<void> {
    await Promise.all([this.cmd, this.#reader, this.changes].map(ready));
  }

  get epoch(): string | null {
    return this.#epoch;
  }

  /**
   * Check the epoch marker against what this node remembers. First contact of a node
   * that never knew an epoch adopts Redis's, or creates one when Redis has none.
   */
  async checkEpoch(): Promise<EpochVerdict> {
    const known = await this.#readKnownEpoch();
    let found = await this.cmd.get(this.keys.epoch);
    if (known === null) {
      if (found === null) {
        const created = randomUUID();
        const set = await this.cmd.set(this.keys.epoch, created, 'NX');
        found = set === 'OK' ? created : await this.cmd.get(this.keys.epoch);
        if (found === null) throw new Error('epoch marker vanished while being created');
        if (set === 'OK') this.#log.info({ epoch: found }, 'cluster state created in Redis (new epoch)');
      }
      await this.#rememberEpoch(found);
      this.#epoch = found;
      return { kind: 'ok', epoch: found };
    }
    if (found === known) {
      this.#epoch = found;
      return { kind: 'ok', epoch: found };
    }
    if (found !== null && (await this.cmd.sismember(`${this.keys.prefix}epoch-history`, known)) === 1) {
      // An operator replaced the epoch (spindle cluster recover): follow it.
      this.#log.warn({ from: known, to: found }, 'cluster epoch replaced by an operator recovery: adopting it');
      await this.#rememberEpoch(found);
      this.#epoch = found;
      return { kind: 'ok', epoch: found };
    }
    this.#epoch = known;
    return { kind: 'lost', found, known };
  }

  async #readKnownEpoch(): Promise<string | null> {
    try {
      const s = (await readFile(this.#epochFile, 'utf8')).trim();
      return s === '' ? null : s;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async #rememberEpoch(epoch: string): Promise<void> {
    await mkdir(path.dirname(this.#epochFile), { recursive: true });
    const tmp = `${this.#epochFile}.tmp`;
    await writeFile(tmp, `${epoch}\n`, { mode: 0o600 });
    await rename(tmp, this.#epochFile);
  }

  /** Publish an event (epoch-checked). Rejects when Redis is unreachable or the epoch moved. */
  async publish(e: ClusterEvent): Promise<string> {
    const epoch = this.#epoch;
    if (epoch === null) throw new Error('no cluster epoch');
    const id = await (this.cmd as unknown as { spindlePublish(...a: (string | number)[]): Promise<string | null> }).spindlePublish(
      this.keys.events,
      this.keys.epoch,
      epoch,
      encodeEvent(e),
      STREAM_MAXLEN,
    );
    if (id === null) throw new Error('cluster epoch changed');
    return id;
  }

  /** The id of the newest stream entry ('0-0' when the stream is empty). */
  async streamTail(): Promise<string> {
    const last = (await this.cmd.xrevrange(this.keys.events, '+', '-', 'COUNT', 1)) as [string, string[]][];
    return last[0]?.[0] ?? '0-0';
  }

  /** Read the stream from `from` (exclusive) for ever, until close(). */
  startReading(from: string): void {
    this.#lastId = from;
    if (this.#reading) return;
    this.#reading = true;
    void this.#readLoop();
  }

  /** Continue reading from `from` instead (after a resynchronization). */
  seek(from: string): void {
    this.#lastId = from;
  }

  async #readLoop(): Promise<void> {
    let failures = 0;
    while (!this.#closed) {
      let batch: [string, [string, string[]][]][] | null;
      try {
        batch = (await this.#reader.xread('COUNT', 256, 'BLOCK', READ_BLOCK_MS, 'STREAMS', this.keys.events, this.#lastId)) as [string, [string, string[]][]][] | null;
        failures = 0;
      } catch (err) {
        if (this.#closed) return;
        if (failures++ === 0) this.#log.warn({ err: (err as Error).message }, 'redis: event stream read failed; retrying');
        await new Promise((r) => setTimeout(r, Math.min(50 * failures, 500)));
        continue;
      }
      if (batch === null) continue;
      for (const [, entries] of batch) {
        for (const [id, fields] of entries) {
          this.#lastId = id;
          const json = fields[1];
          if (fields[0] !== 'e' || json === undefined) continue;
          const e = decodeEvent(json);
          if (typeof e === 'string') {
            this.#log.error({ id, problem: e }, 'cluster event stream: unreadable entry skipped');
            continue;
          }
          if (e.k === 'ack' && e.to === this.node) this.#acked(e.ref, e.o);
          try {
            this.onEvent(e, id);
          } catch (err) {
            this.#log.error({ id, err: (err as Error).message }, 'cluster event handler failed');
          }
        }
      }
    }
  }

  /**
   * Start collecting acknowledgements of `ref` from `peers` (register before publishing,
   * so no answer is missed). The wait resolves once `arm()`ed and every pending node has
   * acknowledged or been dropped (dropPeer: its lease ran out). `peers` is owned by the
   * wait from here on.
   */
  awaitAcks(ref: string, peers: Set<string>): AckWait {
    const w = new AckWait(peers);
    this.#acks.set(ref, w);
    void w.done.then(() => {
      if (this.#acks.get(ref) === w) this.#acks.delete(ref);
    });
    return w;
  }

  /** Stop waiting for `node` in every acknowledgement wait (dead, or resynchronized). */
  dropPeer(node: string, ref?: string): void {
    for (const [r, w] of this.#acks) {
      if (ref !== undefined && r !== ref) continue;
      w.drop(node);
    }
  }

  /** Abandon a wait (its caller gave up). */
  cancelAcks(ref: string): void {
    this.#acks.delete(ref);
  }

  #acked(ref: string, from: string): void {
    this.#acks.get(ref)?.acked(from);
  }

  /** Acknowledge `ref` to node `to`. */
  ack(to: string, ref: string): Promise<string> {
    return this.publish({ k: 'ack', o: this.node, to, ref });
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const [, w] of this.#acks) w.release();
    this.#acks.clear();
    this.#reader.disconnect();
    // Not QUIT on `changes`: it would queue behind a WAIT for up to replicaWaitMs.
    this.changes.disconnect();
    await this.cmd.quit().catch(() => this.cmd.disconnect());
  }
}

/** Resolve once `c` is ready: connect it if it never tried, else wait for its own (re)connection. */
function ready(c: Redis): Promise<void> {
  if (c.status === 'ready') return Promise.resolve();
  if (c.status === 'wait' || c.status === 'end') return c.connect();
  return new Promise((resolve, reject) => {
    const onReady = (): void => {
      off();
      resolve();
    };
    const onError = (err: Error): void => {
      off();
      reject(err);
    };
    const off = (): void => {
      c.off('ready', onReady);
      c.off('error', onError);
    };
    c.once('ready', onReady);
    c.once('error', onError);
  });
}
