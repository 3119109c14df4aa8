/**
 * iSCSI names (RFC 7143 section 4.2.7) and the initiator patterns of ACL entries.
 */

import { byteLength } from './values.ts';

/** RFC 7143 section 4.2.7.1: an iSCSI name is at most 223 bytes. */
export const MAX_ISCSI_NAME_BYTES = 223;

/** Why `name` is not a valid iSCSI name (RFC 7143 section 4.2.7), or undefined when it is. */
export function iscsiNameProblem(name: string): string | undefined {
  const example = 'e.g. iqn.2026-11.io.spindle:demo';
  if (byteLength(name) > MAX_ISCSI_NAME_BYTES) {
    return `iSCSI name is ${byteLength(name)} bytes; at most ${MAX_ISCSI_NAME_BYTES} are allowed`;
  }
  const lower = name.toLowerCase();
  if (lower.startsWith('iqn.')) {
    if (name !== lower) return `iqn. names must be lowercase (${JSON.stringify(lower)})`;
    // iqn.yyyy-mm.reversed.domain[:identifier]. The identifier may use the characters
    // RFC 3722 stringprep leaves in a name; we accept its ASCII subset (a-z 0-9 - . :).
    const m =
      /^iqn\.(\d{4})-(\d{2})\.([a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*)(?::([a-z0-9.:-]+))?$/.exec(
        name,
      );
    if (m === null) {
      return `invalid iqn name ${JSON.stringify(name)}: expected iqn.yyyy-mm.reversed.domain[:identifier] using a-z, 0-9, "-", "." and ":" (${example})`;
    }
    const month = Number(m[2]);
    if (month < 1 || month > 12) return `invalid iqn name ${JSON.stringify(name)}: month must be 01-12`;
    return undefined;
  }
  if (lower.startsWith('eui.')) {
    if (!/^eui\.[0-9a-f]{16}$/i.test(name)) {
      return `invalid eui name ${JSON.stringify(name)}: expected "eui." and 16 hex digits`;
    }
    return undefined;
  }
  if (lower.startsWith('naa.')) {
    if (!/^naa\.(?:[0-9a-f]{16}|[0-9a-f]{32})$/i.test(name)) {
      return `invalid naa name ${JSON.stringify(name)}: expected "naa." and 16 or 32 hex digits`;
    }
    return undefined;
  }
  return `invalid iSCSI name ${JSON.stringify(name)}: must start with iqn., eui. or naa. (${example})`;
}

/** The characters of iSCSI names (iqn., eui., naa. forms) plus the `*` wildcard. */
const INITIATOR_PATTERN_RE = /^[A-Za-z0-9.:*-]+$/;

/**
 * Why `pattern` cannot select initiators, or undefined when it can. Without `*` it must
 * be a valid iSCSI name (RFC 7143 section 4.2.7); with `*` (any run of characters) it may
 * use only the characters of iSCSI names, e.g. "iqn.1994-05.com.redhat:*".
 */
export function initiatorPatternProblem(pattern: string): string | undefined {
  if (!pattern.includes('*')) return iscsiNameProblem(pattern);
  if (byteLength(pattern) > MAX_ISCSI_NAME_BYTES) {
    return `pattern is ${byteLength(pattern)} bytes; at most ${MAX_ISCSI_NAME_BYTES} are allowed`;
  }
  if (!INITIATOR_PATTERN_RE.test(pattern)) {
    return `invalid initiator pattern ${JSON.stringify(pattern)}: use the characters of iSCSI names (a-z 0-9 . : -) and "*", e.g. "iqn.1994-05.com.redhat:*"`;
  }
  return undefined;
}
