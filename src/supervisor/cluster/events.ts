/**
 * Events on the cluster's Redis stream (keys.ts `events`): what one node tells the others.
 * Each entry is one JSON object under field `e`, checked against its shape when read, so
 * a node of another version (or garbage written by hand) is logged and skipped, never
 * half-applied.
 *
 *   pr         a PR / SPC-2 reservation change of one LU: the new state and the side
 *              effects SPC-4 requires (unit attentions, PREEMPT AND ABORT aborts)
 *   ack        a node has applied `ref` (a pr change, or a reset) and nothing it admitted
 *              under the previous state can still write
 *   reset      LOGICAL UNIT RESET / CLEAR TASK SET (SAM-5 6.3.2, 7.4) for every nexus
 *   admin      an operator changed a node's state (drain, undrain, fence)
 *   alua       explicit asymmetric access state change (SET TARGET PORT GROUPS)
 *   capacity   a LU grew (CAPACITY DATA HAS CHANGED on every node)
 *   resync     the operator repaired the cluster state: every node reloads everything
 *   mode       MODE SELECT changed a LU's mode pages (current and saved values)
 *   hold       a node is about to run an exclusive command (COMPARE AND WRITE, ORWRITE,
 *              WRITE ATOMIC) on a LU: every other node holds the LU's commands and acks
 *   release    that command is done: the hold `id` ends
 */
import type { PrEffect, PrState } from '../../shared/state/cluster-state.ts';
import type { ModePageImage } from '../../shared/state/mode-image.ts';
import { checkShape, either, literal, object, opaque, arrayOf, type Infer } from '../../shared/control/shape.ts';

const PR = object({ k: literal('pr'), o: 'string', lu: 'string', v: 'integer', s: opaque<PrState>(), e: opaque<PrEffect[]>('array') });
const ACK = object({ k: literal('ack'), o: 'string', to: 'string', ref: 'string' });
const RESET = object({ k: literal('reset'), o: 'string', lu: 'string', id: 'string', fn: 'integer' });
const ADMIN = object({ k: literal('admin'), o: 'string', node: 'string', state: 'string' });
const ALUA = object({ k: literal('alua'), o: 'string', states: arrayOf(object({ group: 'integer', state: 'integer' })) });
const CAPACITY = object({ k: literal('capacity'), o: 'string', lu: 'string', bytes: 'number' });
const RESYNC = object({ k: literal('resync'), o: 'string' });
const MODE = object({ k: literal('mode'), o: 'string', lu: 'string', pages: opaque<ModePageImage[]>('array') });
const HOLD = object({ k: literal('hold'), o: 'string', lu: 'string', id: 'string' });
const RELEASE = object({ k: literal('release'), o: 'string', lu: 'string', id: 'string' });

const EVENT = either(PR, ACK, RESET, ADMIN, ALUA, CAPACITY, RESYNC, MODE, HOLD, RELEASE);

export type ClusterEvent = Infer<typeof EVENT>;
export type PrChangeEvent = Infer<typeof PR>;

/** The reference an ack names for a PR change. */
export function prRef(lu: string, version: number): string {
  return `pr:${lu}:${version}`;
}

export function resetRef(id: string): string {
  return `reset:${id}`;
}

export function holdRef(id: string): string {
  return `hold:${id}`;
}

export function encodeEvent(e: ClusterEvent): string {
  return JSON.stringify(e);
}

/** The event in a stream entry's JSON, or a description of what is wrong with it. */
export function decodeEvent(json: string): ClusterEvent | string {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (err) {
    return `not JSON: ${(err as Error).message}`;
  }
  const problem = checkShape(EVENT, v, 'event');
  return problem === null ? (v as ClusterEvent) : problem;
}
