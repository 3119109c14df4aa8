/**
 * The copy manager's limits, reported by RECEIVE COPY RESULTS / OPERATING PARAMETERS
 * (SPC-4 6.18.4) and the Third-party Copy VPD page (SPC-4 7.8.17), and enforced by
 * EXTENDED COPY (extended-copy.ts). One place, so what is reported is what is enforced.
 */

/** CSCD (target) descriptors per EXTENDED COPY. */
export const MAX_CSCD_DESCRIPTORS = 8;
/** Segment descriptors per EXTENDED COPY. */
export const MAX_SEGMENT_DESCRIPTORS = 64;
/** CSCD DESCRIPTOR LIST LENGTH + SEGMENT DESCRIPTOR LIST LENGTH, bytes. */
export const MAX_DESCRIPTOR_LIST_LENGTH = 4096;
/** Inline data is not supported (no segment type that uses it). */
export const MAX_INLINE_DATA_LENGTH = 0;
/** Copies in progress per LU; more get BUSY (SAM-5 5.3.1). */
export const MAX_CONCURRENT_COPIES = 16;
/** Block→block segments carry a 16-bit block count (SPC-4 6.4.6.5). */
export const MAX_SEGMENT_BLOCKS = 0xffff;

/** Parameter list header length (SPC-4 6.4.3.1 table 106, LID1). */
export const PARAMETER_HEADER_LENGTH = 16;
/** Identification descriptor CSCD length (SPC-4 6.4.5.6). */
export const CSCD_DESCRIPTOR_LENGTH = 32;

/** Descriptor type codes (SPC-4 6.4.5.1 table 111 / 6.4.6.1 table 122) the copy manager implements. */
export const DescriptorType = {
  /** Segment: block device to block device (SPC-4 6.4.6.5). */
  BLOCK_TO_BLOCK: 0x02,
  /** CSCD: identification descriptor (SPC-4 6.4.5.6). */
  IDENTIFICATION: 0xe4,
} as const;

/** Implemented descriptor type codes, ascending (OPERATING PARAMETERS bytes 44..). */
export const IMPLEMENTED_DESCRIPTORS: readonly number[] = [DescriptorType.BLOCK_TO_BLOCK, DescriptorType.IDENTIFICATION];

/** Bytes moved per read/write step of a segment (the copy buffer size). */
export const COPY_CHUNK_BYTES = 1024 * 1024;
