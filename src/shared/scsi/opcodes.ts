/**
 * SCSI operation codes and service actions (SPC-4 annex D, SBC-4 5.1 table 34, MMC-6 6.1
 * table 243).
 *
 * Only the codes spindle names somewhere are listed; the dispatch tables in
 * src/workers/lun/ decide which of them are implemented.
 */

export const Opcode = {
  TEST_UNIT_READY: 0x00,
  REQUEST_SENSE: 0x03,
  FORMAT_UNIT: 0x04,
  READ_6: 0x08,
  WRITE_6: 0x0a,
  INQUIRY: 0x12,
  MODE_SELECT_6: 0x15,
  RESERVE_6: 0x16,
  RELEASE_6: 0x17,
  MODE_SENSE_6: 0x1a,
  START_STOP_UNIT: 0x1b,
  RECEIVE_DIAGNOSTIC_RESULTS: 0x1c,
  SEND_DIAGNOSTIC: 0x1d,
  PREVENT_ALLOW_MEDIUM_REMOVAL: 0x1e,
  READ_CAPACITY_10: 0x25,
  READ_10: 0x28,
  WRITE_10: 0x2a,
  WRITE_AND_VERIFY_10: 0x2e,
  VERIFY_10: 0x2f,
  PRE_FETCH_10: 0x34,
  SYNCHRONIZE_CACHE_10: 0x35,
  READ_DEFECT_DATA_10: 0x37,
  WRITE_BUFFER: 0x3b,
  READ_BUFFER: 0x3c,
  READ_LONG_10: 0x3e,
  WRITE_SAME_10: 0x41,
  UNMAP: 0x42,
  /** MMC-6 6.26 (CD/DVD devices). */
  READ_TOC_PMA_ATIP: 0x43,
  /** MMC-6 6.6. */
  GET_CONFIGURATION: 0x46,
  /** MMC-6 6.7. */
  GET_EVENT_STATUS_NOTIFICATION: 0x4a,
  SANITIZE: 0x48,
  LOG_SELECT: 0x4c,
  LOG_SENSE: 0x4d,
  /** MMC-6 6.22. */
  READ_DISC_INFORMATION: 0x51,
  /** MMC-6 6.27. */
  READ_TRACK_INFORMATION: 0x52,
  MODE_SELECT_10: 0x55,
  RESERVE_10: 0x56,
  RELEASE_10: 0x57,
  MODE_SENSE_10: 0x5a,
  PERSISTENT_RESERVE_IN: 0x5e,
  PERSISTENT_RESERVE_OUT: 0x5f,
  VARIABLE_LENGTH: 0x7f,
  EXTENDED_COPY: 0x83,
  RECEIVE_COPY_RESULTS: 0x84,
  READ_16: 0x88,
  COMPARE_AND_WRITE: 0x89,
  WRITE_16: 0x8a,
  ORWRITE_16: 0x8b,
  READ_ATTRIBUTE: 0x8c,
  WRITE_AND_VERIFY_16: 0x8e,
  VERIFY_16: 0x8f,
  PRE_FETCH_16: 0x90,
  SYNCHRONIZE_CACHE_16: 0x91,
  WRITE_SAME_16: 0x93,
  WRITE_ATOMIC_16: 0x9c,
  SERVICE_ACTION_IN_16: 0x9e,
  SERVICE_ACTION_OUT_16: 0x9f,
  REPORT_LUNS: 0xa0,
  MAINTENANCE_IN: 0xa3,
  MAINTENANCE_OUT: 0xa4,
  READ_12: 0xa8,
  WRITE_12: 0xaa,
  SERVICE_ACTION_IN_12: 0xab,
  WRITE_AND_VERIFY_12: 0xae,
  VERIFY_12: 0xaf,
  READ_DEFECT_DATA_12: 0xb7,
  /** MMC-6 6.11. */
  MECHANISM_STATUS: 0xbd,
} as const;

/** SANITIZE (0x48) service actions, SBC-4 5.30 table 144. */
export const SanitizeAction = {
  OVERWRITE: 0x01,
  BLOCK_ERASE: 0x02,
  CRYPTOGRAPHIC_ERASE: 0x03,
  EXIT_FAILURE_MODE: 0x1f,
} as const;

/** SERVICE ACTION IN(16) (0x9E) service actions, SBC-4 5.1. */
export const ServiceActionIn16 = {
  READ_CAPACITY_16: 0x10,
  GET_LBA_STATUS: 0x12,
} as const;

/** SERVICE ACTION IN(12) (0xAB) service actions, SPC-4 annex D.3. */
export const ServiceActionIn12 = {
  READ_MEDIA_SERIAL_NUMBER: 0x01,
} as const;

/** MAINTENANCE IN (0xA3) service actions, SPC-4 annex D.3. */
export const MaintenanceIn = {
  REPORT_IDENTIFYING_INFORMATION: 0x05,
  REPORT_TARGET_PORT_GROUPS: 0x0a,
  REPORT_ALIASES: 0x0b,
  REPORT_SUPPORTED_OPERATION_CODES: 0x0c,
  REPORT_SUPPORTED_TASK_MANAGEMENT_FUNCTIONS: 0x0d,
  REPORT_PRIORITY: 0x0e,
  REPORT_TIMESTAMP: 0x0f,
} as const;

/** MAINTENANCE OUT (0xA4) service actions, SPC-4 annex D.3. */
export const MaintenanceOut = {
  SET_TARGET_PORT_GROUPS: 0x0a,
} as const;

/** PERSISTENT RESERVE IN service actions, SPC-4 6.15.1. */
export const PersistentReserveIn = {
  READ_KEYS: 0x00,
  READ_RESERVATION: 0x01,
  REPORT_CAPABILITIES: 0x02,
  READ_FULL_STATUS: 0x03,
} as const;

/** PERSISTENT RESERVE OUT service actions, SPC-4 6.16.2. */
export const PersistentReserveOut = {
  REGISTER: 0x00,
  RESERVE: 0x01,
  RELEASE: 0x02,
  CLEAR: 0x03,
  PREEMPT: 0x04,
  PREEMPT_AND_ABORT: 0x05,
  REGISTER_AND_IGNORE_EXISTING_KEY: 0x06,
  REGISTER_AND_MOVE: 0x07,
  REPLACE_LOST_RESERVATION: 0x08,
} as const;

/** INQUIRY vital product data page codes (SPC-4 7.8.1, SBC-4 6.6.1). */
export const VpdPage = {
  SUPPORTED_VPD_PAGES: 0x00,
  UNIT_SERIAL_NUMBER: 0x80,
  DEVICE_IDENTIFICATION: 0x83,
  EXTENDED_INQUIRY_DATA: 0x86,
  THIRD_PARTY_COPY: 0x8f,
  BLOCK_LIMITS: 0xb0,
  BLOCK_DEVICE_CHARACTERISTICS: 0xb1,
  LOGICAL_BLOCK_PROVISIONING: 0xb2,
} as const;

/** Mode page codes (SPC-4 7.5.2, SBC-4 6.5.1). */
export const ModePage = {
  READ_WRITE_ERROR_RECOVERY: 0x01,
  CACHING: 0x08,
  CONTROL: 0x0a,
  ALL_PAGES: 0x3f,
} as const;
