/**
 * The kinds of logical unit spindle emulates, by PERIPHERAL DEVICE TYPE (SPC-4 6.6.2
 * table 146). The type decides the command set (opcode-registry.ts), the INQUIRY data
 * and VPD pages (spc/inquiry.ts) and the mode pages (spc/mode-pages.ts).
 *
 *   DISK   00h  direct-access block device (SBC-4): `ram`, `file`, `block`, `null`
 *   CDROM  05h  CD/DVD device (MMC-6): `cdrom`, an ISO image, read-only, removable
 */
import type { BackingConfig } from '../../shared/config-types.ts';

export const DeviceType = {
  DISK: 0x00,
  CDROM: 0x05,
} as const;
export type DeviceType = (typeof DeviceType)[keyof typeof DeviceType];

/** The device type a backing kind presents. */
export function deviceTypeOf(backing: BackingConfig): DeviceType {
  return backing.type === 'cdrom' ? DeviceType.CDROM : DeviceType.DISK;
}
