/**
 * The control channels of a node, one Protocol each (endpoint.ts): what each side of
 * each channel handles, with the shapes of bodies and results. Side `a` is the supervisor
 * (or, for HANDOFF, the fabric port worker); side `b` the worker.
 */
import type { AuthConfig, DeviceConfig } from '../config-types.ts';
import type { RoutesWire } from '../wire/routes.ts';
import type { Protocol, Side } from './endpoint.ts';
import { EMPTY, arrayOf, object, opaque, optional, tuple } from './shape.ts';

const NONE = {} as const;
const VOID = 'void' as const;

/** Supervisor <-> LUN worker. */
export const LUN_CONTROL = {
  name: 'lun-control',
  a: { requests: NONE, notes: NONE },
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
    },
    notes: NONE,
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
    },
    notes: {
      /** A newer session with this identity logged in on another worker: close ours. */
      reinstate: object({ key: 'string' }),
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
    },
    notes: NONE,
  },
} as const satisfies Protocol<Side, Side>;

/** Fabric port worker <-> session worker: accepted sockets one way, "closed" the other. */
export const HANDOFF = {
  name: 'handoff',
  a: { requests: NONE, notes: { closed: EMPTY } },
  b: { requests: NONE, notes: NONE, handles: { socket: object({ portal: 'integer' }) } },
} as const satisfies Protocol<Side, Side>;
