/**
 * One end of a typed control channel between two threads (supervisor and a worker, or a
 * portal worker and a session worker). Not the data plane: SCSI commands never travel
 * here.
 *
 * A channel is described by a Protocol: the requests and notifications each side handles,
 * each with the shape of its body (shape.ts) and, for requests, of its result. Both ends
 * are built from the same Protocol object, with opposite roles.
 *
 * Frames are msgpackr-encoded arrays, decoded once by the endpoint's single listener:
 *   [REQUEST, id, type, body] -> [REPLY_OK, id, result] | [REPLY_ERROR, id, code, message]
 *   [NOTE, type, body]
 * The body is checked against its shape before the handler runs; a request that fails the
 * check is answered with ERR_CONTROL_MALFORMED, so a mismatch surfaces at the boundary.
 * Every request carries an id and a timeout: there is no hand-written wait-for-reply.
 *
 * A message carrying a transferable handle (a net.Socket moving from a portal worker to a
 * session worker) cannot be msgpack-encoded: it goes as `{ handle: type, body, value }`
 * through postMessage's transfer list, and is checked and dispatched the same way.
 */
import { Packr } from 'msgpackr';
import { checkShape, type Infer, type Shape } from './shape.ts';
import { ControlError, ControlErrorCode, errorCode, errorMessage } from './errors.ts';

/** What one side handles. */
export interface Side {
  readonly requests: { readonly [type: string]: { readonly body: Shape; readonly result: Shape } };
  readonly notes: { readonly [type: string]: Shape };
  /** Messages that carry a transferable handle (transfer list), with their body shape. */
  readonly handles?: { readonly [type: string]: Shape };
}

/** A channel: what each of its two sides handles. */
export interface Protocol<A extends Side = Side, B extends Side = Side> {
  readonly name: string;
  readonly a: A;
  readonly b: B;
}

/** The minimum of Worker, MessagePort and parentPort an endpoint needs. */
export interface PortLike {
  postMessage(value: unknown, transferList?: readonly unknown[]): void;
  on(event: 'message', listener: (value: unknown) => void): unknown;
  off(event: 'message', listener: (value: unknown) => void): unknown;
}

export type RequestHandlers<S extends Side> = {
  [K in keyof S['requests']]: (body: Infer<S['requests'][K]['body']>) => Infer<S['requests'][K]['result']> | Promise<Infer<S['requests'][K]['result']>>;
};
export type NoteHandlers<S extends Side> = { [K in keyof S['notes']]: (body: Infer<S['notes'][K]>) => void };
export type HandleHandlers<S extends Side> = {
  [K in keyof NonNullable<S['handles']>]: (body: Infer<NonNullable<S['handles']>[K]>, handle: unknown) => void;
};

export interface Handlers<S extends Side> {
  requests: RequestHandlers<S>;
  notes: NoteHandlers<S>;
  handles?: HandleHandlers<S>;
}

/** Default request timeout; long operations pass their own. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/**
 * `Local` is what this end handles, `Remote` what the other end handles (and so what this
 * end may send). Bodies and results are inferred from the protocol's shapes at each call.
 */
export interface ControlEndpoint<Local extends Side, Remote extends Side> {
  /** Ask the peer; resolves with its checked result or rejects with a ControlError. */
  request<K extends keyof Remote['requests'] & string>(
    type: K,
    body: Infer<Remote['requests'][K]['body']>,
    timeoutMs?: number,
  ): Promise<Infer<Remote['requests'][K]['result']>>;
  /** Tell the peer; no answer. */
  notify<K extends keyof Remote['notes'] & string>(type: K, body: Infer<Remote['notes'][K]>): void;
  /**
   * Send a message with a handle: moved (a socket, a MessagePort) when `move`, otherwise
   * structured-cloned, which shares any SharedArrayBuffer in it (shared memory for a
   * replacement worker).
   */
  transfer<K extends keyof NonNullable<Remote['handles']> & string>(
    type: K,
    body: Infer<NonNullable<Remote['handles']>[K]>,
    handle: unknown,
    move?: boolean,
  ): void;
  /** Stop listening and fail every pending request (the peer is gone). Idempotent. */
  close(why: string): void;
  readonly pendingRequests: number;
  /** Protocol violations by the peer (the owner logs them; never thrown into the port). */
  onProtocolError: (problem: string) => void;
  /** Phantom: ties the type to the side it handles. */
  readonly __local?: Local;
}

/** The endpoint of side `a` of `protocol` on `port`. */
export function sideA<P extends Protocol>(protocol: P, port: PortLike, handlers: NoInfer<Handlers<P['a']>>): ControlEndpoint<P['a'], P['b']> {
  return new ControlPort(port, protocol.a, protocol.b, handlers as LooseHandlers, `${protocol.name}/a`);
}

/** The endpoint of side `b` of `protocol` on `port`. */
export function sideB<P extends Protocol>(protocol: P, port: PortLike, handlers: NoInfer<Handlers<P['b']>>): ControlEndpoint<P['b'], P['a']> {
  return new ControlPort(port, protocol.b, protocol.a, handlers as LooseHandlers, `${protocol.name}/b`);
}

const Frame = { REQUEST: 0, REPLY_OK: 1, REPLY_ERROR: 2, NOTE: 3 } as const;

const packr = new Packr({ useRecords: false });

interface Pending {
  readonly type: string;
  readonly result: Shape;
  readonly timer: NodeJS.Timeout;
  resolve(v: unknown): void;
  reject(e: Error): void;
}

type AnyHandler = (body: unknown, handle?: unknown) => unknown;
interface LooseHandlers {
  readonly requests: object;
  readonly notes: object;
  readonly handles?: object;
}

/** The untyped machinery behind ControlEndpoint. */
class ControlPort {
  readonly #port: PortLike;
  readonly #local: Side;
  readonly #remote: Side;
  readonly #label: string;
  readonly #requests: Record<string, AnyHandler>;
  readonly #notes: Record<string, AnyHandler>;
  readonly #handles: Record<string, AnyHandler>;
  readonly #pending = new Map<number, Pending>();
  readonly #listener = (raw: unknown) => this.#receive(raw);
  #nextId = 0;
  #closed: string | null = null;
  onProtocolError: (problem: string) => void = () => {};

  constructor(port: PortLike, local: Side, remote: Side, handlers: LooseHandlers, label: string) {
    this.#port = port;
    this.#local = local;
    this.#remote = remote;
    this.#requests = handlers.requests as Record<string, AnyHandler>;
    this.#notes = handlers.notes as Record<string, AnyHandler>;
    this.#handles = (handlers.handles ?? {}) as Record<string, AnyHandler>;
    this.#label = label;
    port.on('message', this.#listener);
  }

  request(type: string, body: unknown, timeoutMs: number = DEFAULT_REQUEST_TIMEOUT_MS): Promise<never> {
    if (this.#closed !== null) return Promise.reject(new ControlError(ControlErrorCode.CLOSED, `${type}: ${this.#closed}`));
    const spec = this.#remote.requests[type];
    if (spec === undefined) return Promise.reject(new ControlError(ControlErrorCode.UNSUPPORTED, `${this.#label}: no request ${type}`));
    const id = ++this.#nextId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new ControlError(ControlErrorCode.TIMEOUT, `${this.#label}: no answer to ${type} within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.#pending.set(id, { type, result: spec.result, timer, resolve: resolve as (v: unknown) => void, reject });
      this.#post([Frame.REQUEST, id, type, body]);
    });
  }

  notify(type: string, body: unknown): void {
    if (this.#closed !== null) return;
    this.#post([Frame.NOTE, type, body]);
  }

  transfer(type: string, body: unknown, handle: unknown, move = true): void {
    // A SharedArrayBuffer is shared by postMessage, never moved (and may not be listed).
    this.#port.postMessage({ handle: type, body, value: handle }, move && !(handle instanceof SharedArrayBuffer) ? [handle] : []);
  }

  close(why: string): void {
    if (this.#closed !== null) return;
    this.#closed = why;
    this.#port.off('message', this.#listener);
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#pending.delete(id);
      p.reject(new ControlError(ControlErrorCode.CLOSED, `${p.type}: ${why}`));
    }
  }

  get pendingRequests(): number {
    return this.#pending.size;
  }

  #post(frame: unknown[]): void {
    try {
      this.#port.postMessage(packr.pack(frame));
    } catch (err) {
      // The port is closed (the peer exited): pending requests fail by close() or timeout.
      this.onProtocolError(`${this.#label}: send failed: ${errorMessage(err)}`);
    }
  }

  #receive(raw: unknown): void {
    if (!(raw instanceof Uint8Array)) {
      this.#receiveHandle(raw);
      return;
    }
    let frame: unknown;
    try {
      frame = packr.unpack(raw);
    } catch (err) {
      this.onProtocolError(`${this.#label}: undecodable frame: ${errorMessage(err)}`);
      return;
    }
    if (!Array.isArray(frame)) {
      this.onProtocolError(`${this.#label}: frame is not an array`);
      return;
    }
    switch (frame[0]) {
      case Frame.REQUEST:
        this.#onRequest(frame[1], frame[2], frame[3]);
        return;
      case Frame.REPLY_OK:
      case Frame.REPLY_ERROR:
        this.#onReply(frame);
        return;
      case Frame.NOTE:
        this.#onNote(frame[1], frame[2]);
        return;
      default:
        this.onProtocolError(`${this.#label}: unknown frame kind ${String(frame[0])}`);
    }
  }

  #onRequest(id: unknown, type: unknown, body: unknown): void {
    if (!Number.isInteger(id)) {
      this.onProtocolError(`${this.#label}: request without an id`);
      return;
    }
    const fail = (code: string, message: string) => this.#post([Frame.REPLY_ERROR, id, code, message]);
    const spec = typeof type === 'string' && Object.hasOwn(this.#local.requests, type) ? this.#local.requests[type] : undefined;
    const handler = typeof type === 'string' && Object.hasOwn(this.#requests, type) ? this.#requests[type] : undefined;
    if (spec === undefined || handler === undefined) {
      fail(ControlErrorCode.UNSUPPORTED, `${this.#label}: no request ${String(type)}`);
      return;
    }
    const problem = checkShape(spec.body, body);
    if (problem !== null) {
      this.onProtocolError(`${this.#label}: ${String(type)}: ${problem}`);
      fail(ControlErrorCode.MALFORMED, `${String(type)}: ${problem}`);
      return;
    }
    let out: unknown;
    try {
      out = handler(body);
    } catch (err) {
      fail(errorCode(err), errorMessage(err));
      return;
    }
    void Promise.resolve(out).then(
      (result) => this.#post([Frame.REPLY_OK, id, result ?? null]),
      (err: unknown) => fail(errorCode(err), errorMessage(err)),
    );
  }

  #onReply(frame: unknown[]): void {
    const id = frame[1] as number;
    const p = this.#pending.get(id);
    if (p === undefined) {
      // Its request timed out already: the late answer has nobody to go to.
      this.onProtocolError(`${this.#label}: reply to unknown or expired request ${String(id)}`);
      return;
    }
    this.#pending.delete(id);
    clearTimeout(p.timer);
    if (frame[0] === Frame.REPLY_ERROR) {
      p.reject(new ControlError(String(frame[2]), String(frame[3])));
      return;
    }
    // msgpack has no undefined: a void answer travels as null.
    const result = frame[2] === null && p.result === 'void' ? undefined : frame[2];
    const problem = checkShape(p.result, result, 'result');
    if (problem !== null) {
      p.reject(new ControlError(ControlErrorCode.MALFORMED, `${p.type}: ${problem}`));
      return;
    }
    p.resolve(result);
  }

  #onNote(type: unknown, body: unknown): void {
    const spec = typeof type === 'string' && Object.hasOwn(this.#local.notes, type) ? this.#local.notes[type] : undefined;
    const handler = typeof type === 'string' && Object.hasOwn(this.#notes, type) ? this.#notes[type] : undefined;
    if (spec === undefined || handler === undefined) {
      this.onProtocolError(`${this.#label}: unknown notification ${String(type)}`);
      return;
    }
    const problem = checkShape(spec, body);
    if (problem !== null) {
      this.onProtocolError(`${this.#label}: ${String(type)}: ${problem}`);
      return;
    }
    handler(body);
  }

  #receiveHandle(raw: unknown): void {
    const m = raw as { handle?: unknown; body?: unknown; value?: unknown } | null;
    const type = m?.handle;
    const specs = this.#local.handles ?? {};
    const spec = typeof type === 'string' && Object.hasOwn(specs, type) ? specs[type] : undefined;
    const handler = typeof type === 'string' && Object.hasOwn(this.#handles, type) ? this.#handles[type] : undefined;
    if (m === null || spec === undefined || handler === undefined) {
      this.onProtocolError(`${this.#label}: unexpected message ${typeof type === 'string' ? type : typeof raw}`);
      return;
    }
    const problem = checkShape(spec, m.body);
    if (problem !== null) {
      this.onProtocolError(`${this.#label}: ${String(type)}: ${problem}`);
      return;
    }
    handler(m.body, m.value);
  }
}
