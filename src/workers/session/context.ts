/**
 * What every connection on a session worker shares: the task pool and slab, the
 * channels to the LUN workers, the routing tables and the tuning. One per worker.
 */
import type { AuthConfig, IscsiTuning } from '../../shared/config-types.ts';
import type { Logger } from '../../shared/logging.ts';
import type { LunChannel } from './lun-channel.ts';
import type { PortalRoute, TargetRoute } from './routes.ts';
import type { TaskPool } from './task.ts';
import type { NexusRecord } from '../../shared/ring/nexus-table.ts';
import type { SessionCounters } from '../../shared/metrics/session-counters.ts';
import type { InlineIo } from './inline-io.ts';

export interface SessionWorkerContext {
  readonly index: number;
  readonly log: Logger;
  readonly pool: TaskPool;
  readonly channels: LunChannel[];
  readonly targets: Map<string, TargetRoute>;
  readonly portals: PortalRoute[];
  readonly tuning: IscsiTuning;
  /** Replaced by a configuration reload. */
  discoveryAuth?: AuthConfig;
  /** Command window per session (MaxCmdSN - ExpCmdSN + 1 when idle). */
  readonly cmdWindow: number;
  /** Target slot by IQN in the node-wide session counts (stable across reloads). */
  readonly targetIndex: Map<string, number>;
  /** Count a new session of target `i`; false when maxSessionsPerTarget is reached. */
  reserveSession(i: number): boolean;
  releaseSession(i: number): void;
  /**
   * Failed-authentication backoff, node-wide (the supervisor owns the throttle so an
   * initiator's retries landing on different session workers still add up): resolves
   * with how long to hold this failure's response.
   */
  authFailure(key: string): Promise<{ delayMs: number; failures: number }>;
  authSuccess(key: string): void;
  /** Shutting down: no new SCSI commands are accepted (in-flight ones finish). */
  readonly draining: boolean;
  /** A fresh TSIH, unique node-wide and held once by the caller; 0 when none is free. */
  allocTsih(): number;
  /** The session worker holding a session with this TSIH, or -1. */
  tsihOwner(tsih: number): number;
  /** Hold `tsih` (again, or taking it over from worker `from`); false if `from` no longer has it. */
  adoptTsih(tsih: number, from: number): boolean;
  /** Drop one hold on `tsih`; the last one frees it. */
  releaseTsih(tsih: number): void;
  /**
   * A session with this identity (InitiatorName, ISID, TargetName, portal group) is now
   * in full feature phase on `conn`: an older session with the same identity, here or on
   * another session worker, is closed (session reinstatement, RFC 7143 6.3.5).
   */
  sessionUp(key: string, tsih: number, conn: { close(why: string): void }): void;
  sessionDown(key: string, conn: { close(why: string): void }): void;
  /** The TSIH of the live session with this identity on this worker, or 0. */
  localSessionTsih(key: string): number;
  /** Which session worker holds the live session with this identity (the supervisor knows), or null. */
  findSession(key: string): Promise<{ worker: number; tsih: number } | null>;
  /**
   * Whether a login may be reinstating a connection of the session with this TSIH
   * (RFC 7143 6.3.4): a live session with this TSIH and ISID here, or any session with
   * this TSIH on another worker (its identity is checked when the login completes).
   */
  hasSession(tsih: number, isid: Buffer): boolean;
  /** Close the connection of that session, except `keep` (its replacement). */
  closeSession(tsih: number, isid: Buffer, keep: object, why: string): void;
  /** Publish a new I_T nexus in the nexus table; its handle, or undefined when full. */
  registerNexus(r: NexusRecord): number | undefined;
  /** The session ended: tell every LUN worker, then free the handle's slot. */
  releaseNexus(id: number): void;
  /**
   * Send a task management function to the logical unit `luIndex` of LUN worker
   * `lunWorker`; `waiter.settle()` runs when the LU acknowledges. `refTag` names the
   * command of ABORT TASK (its task tag). False if no task object was available (the
   * function then acts on this session's tasks only).
   */
  sendTmf(
    lunWorker: number,
    luIndex: number,
    fn: number,
    nexus: number,
    waiter: { settle(everywhere?: boolean): void },
    refTag?: number,
  ): boolean;
  /**
   * Send a unit attention event (descriptors.ts UaEvent) for `nexus` to every logical
   * unit of `target`'s LUN map, ordered with the session's commands on each ring.
   */
  signalLuns(nexus: number, target: TargetRoute, event: number): void;
  /** Ring the doorbells of LUN workers that got commands since the last call. */
  flushDoorbells(): void;
  /**
   * Socket input is about to be handled: LUN workers need not ring this worker's
   * doorbell until inputEnds() (shared/ring/consumer-loop.ts).
   */
  inputStarts(): void;
  /**
   * The input is handled: ring the LUN workers that got commands, poll briefly for their
   * completions when that pays (see SessionWorker #pollCompletions), then re-arm the
   * doorbell and take what completed meanwhile.
   */
  inputEnds(): void;
  /**
   * Slab bytes held by writes of every session of this worker whose data is still due,
   * and the most they may hold together (half the slab: the rest stays for reads and for
   * writes whose data is in), so many sessions withholding data cannot starve the others.
   */
  readonly pendingWrites: { bytes: number; readonly limit: number };
  /** Write fixed-format sense for a named SenseReason into buf; returns its length. */
  writeSense(buf: Buffer, reason: string): number;
  /**
   * The worker's counters in shared memory (shared/metrics/session-counters.ts), read by
   * the supervisor's exporter. Absent (unit tests): connections count privately.
   */
  readonly metrics?: SessionCounters;
  /** READs and WRITEs of RAM disks served on this worker (inline-io.ts). */
  readonly inline: InlineIo;
}
