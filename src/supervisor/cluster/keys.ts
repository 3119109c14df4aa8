/**
 * Redis key names of one cluster. Every key carries the cluster id in a hash tag
 * (`{...}`), so a Redis Cluster deployment would keep them in one slot, which the Lua
 * scripts (several keys per call) need.
 */
export class ClusterKeys {
  readonly prefix: string;

  constructor(clusterId: string) {
    this.prefix = `spindle:{${clusterId}}:`;
  }

  /** Random marker written when the cluster's state is first created (loss detection). */
  get epoch(): string {
    return `${this.prefix}epoch`;
  }

  /** The event stream every node reads (PR changes, acknowledgements, resets, admin, ALUA). */
  get events(): string {
    return `${this.prefix}events`;
  }

  /** Persistent reservation state of one LU (JSON PrState), keyed by its NAA. */
  pr(lu: string): string {
    return `${this.prefix}pr:${lu}`;
  }

  /** A node's lease (JSON LeaseValue, with a time to live). */
  lease(node: string): string {
    return `${this.prefix}lease:${node}`;
  }

  /** Set by a peer that waited too long for this node: its next renewal fails. */
  revoked(node: string): string {
    return `${this.prefix}revoked:${node}`;
  }

  /** Operator state of a node: active, draining, drained, fenced. */
  admin(node: string): string {
    return `${this.prefix}admin:${node}`;
  }

  /** Explicit asymmetric access states (SET TARGET PORT GROUPS): group id -> state. */
  get alua(): string {
    return `${this.prefix}alua`;
  }

  /** Pending unit attentions of a node's I_T nexuses at one LU: identity -> JSON list. */
  ua(node: string, lu: string): string {
    return `${this.prefix}ua:${node}:${lu}`;
  }

  /** COMPARE AND WRITE lock of one LU (VMware ATS across nodes). */
  cawLock(lu: string): string {
    return `${this.prefix}lock:caw:${lu}`;
  }

  /** What a node still knew when it found Redis had lost the cluster state. */
  recovery(node: string): string {
    return `${this.prefix}recovery:${node}`;
  }
}
