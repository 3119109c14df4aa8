/**
 * The control channels of a node, one Protocol each (endpoint.ts): what each side of
 * each channel handles, with the shapes of bodies and results. Side `a` is the supervisor
 * (or, for HANDOFF, the fabric port worker); side `b` the worker.
 */
import type { AuthConfig, DeviceConfig } from '../config-types.ts';
import type { PrEffect, PrRequest, PrResult, PrState } from '../state/cluster-state.ts';
import type { ModePageImage } from '../state/mode-image.ts';
import type { RoutesWire } from '../wire/routes.ts';
import type { ConnectionInfo, UnitInfo } from '../wire/admin-info.ts';
import type { Protocol, Side } from './endpoint.ts';
import { EMPTY, arrayOf, literal, object, opaque, optional, tuple } from './shape.ts';

const NONE = {} as const;
const VOID = 'void' as const;

/**
 * Test-only fault injection (issue 12: workers crashed and hung on purpose under load):
 * honoured only when the process runs with SPINDLE_TEST_FAULTS=1.
 */
const FAULT = { body: object({ mode: literal('crash', 'hang') }), result: VOID } as const;

/** Supervisor <-> LUN worker. */
export const LUN_CONTROL = {
  name: 'lun-control',
  a: {
    requests: {
      /** Cluster mode: the shared reservation state of LU `lu` (its NAA, hex) as it opens. */
      prLoad: {
        body: object({ lu: 'string' }),
        /** `hold`: another node's exclusive command may be running on the LU (its lock is taken): hold it from the start (sbc/state.ts). */
        result: object({ state: opaque<PrState>(), hold: optional(object({ id: 'string', ttlMs: 'integer' })) }),
      },
      /**
       * Cluster mode: apply a reservation change cluster-wide (supervisor/cluster/pr-store.ts).
       * Fails with ERR_CLUSTER_* when the cluster state cannot be changed now.
       */
      prTransition: { body: object({ lu: 'string', request: opaque<PrRequest>() }), result: object({ result: opaque<PrResult>() }) },
      /**
       * Cluster mode: task management that reaches every I_T nexus of these LUs (LOGICAL
       * UNIT RESET, CLEAR TASK SET, target resets) was done here; do it on every other
       * node. Answers once they all have.
       */
      luReset: { body: object({ lus: arrayOf('string'), fn: 'integer' }), result: VOID },
      /**
       * Cluster mode: the LU's cluster-wide lock for COMPARE AND WRITE, ORWRITE, WRITE
       * ATOMIC (atomic against the same commands on other nodes). Fails with ERR_CLUSTER_*.
       */
      lockLu: { body: object({ lu: 'string' }), result: object({ token: 'string' }) },
      unlockLu: { body: object({ lu: 'string', token: 'string' }), result: VOID },
      /** Cluster mode: explicit asymmetric access states (SET TARGET PORT GROUPS) for every node. */
      setAlua: { body: object({ states: arrayOf(object({ group: 'integer', state: 'integer' })) }), result: VOID },
      /** Cluster mode: the pending unit attentions this node kept for LU `lu` (ua-persistence.ts). */
      uaLoad: { body: object({ lu: 'string' }), result: object({ entries: opaque<unknown[]>('array') }) },
    },
    notes: {
      /** Cluster mode: the LU's pending unit attentions changed; kept in Redis for a restart. */
      uaSnapshot: object({ lu: 'string', entries: opaque<unknown[]>('array') }),
      /** Cluster mode: MODE SELECT changed these pages of LU `lu`; every node takes them. */
      modesChanged: object({ lu: 'string', pages: opaque<ModePageImage[]>('array') }),
      /** Cluster mode: a configuration reload grew LU `lu` here; every node grows it too. */
      capacityChanged: object({ lu: 'string', bytes: 'number' }),
      /** Unit `luIndex` is a buffered file session workers may serve inline: they open `path` (shared/ring/inline-grants.ts). */
      inlineFile: object({ luIndex: 'integer', path: 'string' }),
    },
    /**
     * A RAM device's memory (a SharedArrayBuffer, shared not copied): the supervisor keeps
     * it, so the worker that replaces a crashed one finds the contents (issue 12), and
     * hands it to the session workers, which serve READs and WRITEs under grants
     * (shared/ring/inline-grants.ts; `gen`: the memory's generation there).
     */
    handles: { ramMemory: object({ device: 'string', luIndex: 'integer', gen: 'integer' }) },
  },
  b: {
    requests: {
      /** Open the backing stores of the worker's devices and start consuming the rings. */
      start: { body: EMPTY, result: object({ units: 'integer' }) },
      /**
       * Reload, first step (supervisor/reload.ts): open new units and grow resized ones,
       * before any route leads to them. All or nothing for the new units.
       */
      prepare: {
        body: object({
          add: arrayOf(object({ luIndex: 'integer', device: opaque<DeviceConfig>() })),
          grow: arrayOf(object({ luIndex: 'integer', sizeBytes: 'number' })),
          /** CD-ROM drives that get another disc: the image path ('' for none). */
          media: arrayOf(object({ luIndex: 'integer', path: 'string' })),
          /** The ALUA device -> target port groups map of the new configuration. */
          deviceGroups: opaque<Record<string, number[]>>(),
        }),
        result: VOID,
      },
      /** Reload, last step: close removed units (no route leads to them now), change ALUA states. */
      commit: {
        body: object({
          remove: arrayOf('integer'),
          /** Target port groups whose asymmetric access state changes (SPC-4 5.16.2.4). */
          states: arrayOf(object({ group: 'integer', state: 'integer' })),
        }),
        result: VOID,
      },
      /** Session workers have drained: finish stragglers, flush and close every store. */
      stop: { body: EMPTY, result: VOID },
      stats: { body: EMPTY, result: object({ units: 'integer', inflight: 'integer' }) },
      /**
       * Cluster mode: a reservation change made on another node (or found by a resync).
       * Answers once the LU has adopted it and nothing admitted under the old state can
       * still write (the supervisor then acknowledges it to the writer).
       */
      prApply: { body: object({ lu: 'string', state: opaque<PrState>(), effects: opaque<PrEffect[]>('array'), reload: optional('boolean') }), result: VOID },
      /** Cluster mode: task management `fn` issued on another node, for LU `lu` (answers when done). */
      resetApply: { body: object({ lu: 'string', fn: 'integer' }), result: VOID },
      /** Cluster mode: mode pages another node's MODE SELECT changed. */
      modeApply: { body: object({ lu: 'string', pages: opaque<ModePageImage[]>('array') }), result: VOID },
      /** Cluster mode: another node grew LU `lu` (CAPACITY DATA HAS CHANGED here too). */
      growApply: { body: object({ lu: 'string', bytes: 'number' }), result: VOID },
      /**
       * Cluster mode: another node runs an exclusive command (COMPARE AND WRITE, ORWRITE,
       * WRITE ATOMIC) on LU `lu`: hold its commands here (sbc/state.ts holdForPeer) for at
       * most `ttlMs`. Answers once nothing of the LU is in flight here.
       */
      holdApply: { body: object({ lu: 'string', id: 'string', ttlMs: 'integer' }), result: VOID },
      /** Cluster mode: that command is done; the hold `id` ends. */
      holdRelease: { body: object({ lu: 'string', id: 'string' }), result: VOID },
      /**
       * Session worker `session` died (issue 12): its commands are aborted, its I_T nexuses
       * lost. Its replacement's link follows as a `sessionLink` handle message.
       */
      sessionLost: { body: object({ session: 'integer' }), result: object({ aborted: 'integer', nexuses: 'integer' }) },
      fault: FAULT,
      /** Admin API: every open unit with its settings, reservations, ALUA view and long operations. */
      units: { body: EMPTY, result: object({ units: opaque<UnitInfo[]>('array') }) },
    },
    notes: NONE,
    /** The replacement session worker's rings, slab and nexus table (SessionLinkInit, shared memory). */
    handles: { sessionLink: object({ session: 'integer' }) },
  },
} as const satisfies Protocol<Side, Side>;

/** Supervisor <-> session worker. */
export const SESSION_CONTROL = {
  name: 'session-control',
  a: {
    requests: {
      /**
       * A failed authentication of (initiator, address) `key` (shared/iscsi/auth-key.ts):
       * how long to hold its Login Response (node-wide backoff, supervisor/auth-throttle.ts).
       */
      authFailure: { body: object({ key: 'string' }), result: object({ delayMs: 'number', failures: 'integer' }) },
      /**
       * Connection reinstatement across session workers (RFC 7143 6.3.4): which worker
       * holds the session with this identity, and its TSIH (worker -1: none).
       */
      sessionFind: { body: object({ key: 'string' }), result: object({ worker: 'integer', tsih: 'integer' }) },
    },
    notes: {
      authSuccess: object({ key: 'string' }),
      /** A session with identity `key` reached full feature phase on the sending worker. */
      sessionUp: object({ key: 'string', tsih: 'integer' }),
      sessionDown: object({ key: 'string' }),
    },
  },
  b: {
    requests: {
      /** Everything is set up: say so (the reply is the worker's "ready"). */
      start: { body: EMPTY, result: VOID },
      /** New routing tables (configuration reload): LUN maps, ACLs, credentials, targets. */
      routes: {
        body: object({
          routes: opaque<RoutesWire>(),
          discoveryAuth: optional(opaque<AuthConfig>()),
          /** Target name -> its slot in the node-wide session counters. */
          targetSlots: arrayOf(tuple('string', 'integer')),
        }),
        result: VOID,
      },
      /**
       * Shutting down: ask every initiator to log out, let in-flight commands finish (at
       * most `timeoutMs`), then close every connection. Answers when drained.
       */
      drain: { body: object({ timeoutMs: 'integer' }), result: VOID },
      stats: { body: EMPTY, result: object({ connections: 'integer', tasks: 'integer', slabInUse: 'integer' }) },
      /**
       * Node drain (cluster failover): ask every initiator to log out (RFC 7143 11.9.1,
       * AsyncEvent 1) and answer with the commands still in flight. Logins stay open: an
       * initiator that comes back finds the port group in standby and uses other paths.
       */
      logoutAll: { body: object({ time2WaitSec: 'integer' }), result: object({ tasks: 'integer' }) },
      /** Node fence: close every connection at once. */
      closeAll: { body: object({ reason: 'string' }), result: VOID },
      /**
       * LUN worker `lunWorker` died (issue 12): its commands end with a retryable status
       * now; its replacement's channel follows as a `lunChannel` handle message.
       */
      lunLost: { body: object({ lunWorker: 'integer' }), result: object({ ended: 'integer' }) },
      fault: FAULT,
      /** Admin API: every connection of the worker (login phase included). */
      sessions: { body: EMPTY, result: object({ connections: opaque<ConnectionInfo[]>('array') }) },
      /**
       * Admin API: ask the initiator of the full-feature session with this TSIH to log out
       * (RFC 7143 11.9.1, AsyncEvent 1). `found` is false when no such session lives here.
       */
      logoutSession: { body: object({ tsih: 'integer', time2WaitSec: 'integer' }), result: object({ found: 'boolean' }) },
      /** Admin API: close the connection of the session with this TSIH now. */
      closeSession: { body: object({ tsih: 'integer', reason: 'string' }), result: object({ found: 'boolean' }) },
    },
    notes: {
      /** A newer session with this identity logged in on another worker: close ours. */
      reinstate: object({ key: 'string' }),
      /** Unit `luIndex` of LUN worker `lunWorker` was removed: drop its memory or close its file. */
      forgetUnit: object({ lunWorker: 'integer', luIndex: 'integer' }),
      /** Unit `luIndex` of LUN worker `lunWorker` is a buffered file served inline: open `path`. */
      inlineFile: object({ lunWorker: 'integer', luIndex: 'integer', path: 'string' }),
    },
    handles: {
      /** The replacement LUN worker's rings and doorbell (LunChannelInit, shared memory). */
      lunChannel: object({ lunWorker: 'integer' }),
      /** The handoff port of portal worker `portal`'s replacement (a MessagePort, moved). */
      portalPort: object({ portal: 'integer' }),
      /**
       * A RAM disk's memory (SharedArrayBuffer) for inline I/O on unit `luIndex` of LUN
       * worker `lunWorker`, generation `gen` (shared/ring/inline-grants.ts).
       */
      inlineMemory: object({ lunWorker: 'integer', luIndex: 'integer', gen: 'integer' }),
    },
  },
} as const satisfies Protocol<Side, Side>;

/** Supervisor <-> fabric port worker. */
export const PORTAL_CONTROL = {
  name: 'portal-control',
  a: { requests: NONE, notes: NONE },
  b: {
    requests: {
      /** Bind and listen; fails with ERR_SPINDLE_LISTEN. Listening starts last, when every worker behind is ready. */
      start: { body: EMPTY, result: VOID },
      /** Stop accepting (existing connections belong to session workers). */
      stop: { body: EMPTY, result: VOID },
      /** Session worker `session` died: place nothing on it until its new port comes. */
      sessionLost: { body: object({ session: 'integer' }), result: VOID },
      fault: FAULT,
    },
    notes: NONE,
    /** The handoff port of session worker `session`'s replacement (a MessagePort, moved). */
    handles: { sessionPort: object({ session: 'integer' }) },
  },
} as const satisfies Protocol<Side, Side>;

/** Fabric port worker <-> session worker: accepted sockets one way, "closed" the other. */
export const HANDOFF = {
  name: 'handoff',
  a: { requests: NONE, notes: { closed: object({ address: 'string' }) } },
  b: { requests: NONE, notes: NONE, handles: { socket: object({ portal: 'integer' }) } },
} as const satisfies Protocol<Side, Side>;
