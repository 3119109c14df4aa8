/**
 * A mode page as it travels between cluster nodes (MODE SELECT on one node changes the
 * LU's mode pages on every node, SPC-4 7.5: they belong to the LU, not to a target port).
 */
export interface ModePageImage {
  /** PAGE CODE and SUBPAGE CODE. */
  readonly page: number;
  readonly subpage: number;
  /** The current page (hex); the saved one, or null when it was not saved. */
  readonly current: string;
  readonly saved: string | null;
}
