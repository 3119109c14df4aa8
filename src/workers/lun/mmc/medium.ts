/**
 * The medium of a CD-ROM drive (MMC-6): its tray, the disc in it (an ISO image file), the
 * media events GET EVENT STATUS NOTIFICATION reports, and changing the disc.
 *
 * States, and what medium-access commands get (MMC-6 4.1.6, SPC-4 annex F):
 *   disc in, tray closed        ready
 *   tray open (ejected)          NOT READY, MEDIUM NOT PRESENT - TRAY OPEN (02/3A/02)
 *   tray closed, no disc         NOT READY, MEDIUM NOT PRESENT - TRAY CLOSED (02/3A/01)
 *   disc being changed           NOT READY, LOGICAL UNIT IS IN PROCESS OF BECOMING READY
 *                                (02/04/01)
 * START STOP UNIT with LOEJ opens (eject) and closes (load) the tray (sbc/start-stop-unit.ts,
 * refused while an I_T nexus prevents removal). A disc that becomes ready, by a load or
 * a change, is a NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED unit attention (06/28/00,
 * SPC-4 annex F; MMC-6 4.1.6.2) and a NewMedia event; an eject is a MediaRemoval event.
 * The unit attention goes to every I_T nexus but the one whose START STOP UNIT loaded the
 * disc (it knows; as SPC-4 7.5.1 does for the issuer of a MODE SELECT), and to every one
 * after a change by the administrator.
 *
 * Changing the disc is the administrator's act, a configuration reload with another
 * `cdrom.path` (supervisor/reload.ts). The new image is opened first (a path that cannot
 * be opened changes nothing); then the drive is not ready until the commands in flight on
 * the old image have finished, the old image is closed, and the new one is in.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { SenseReason } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { NullStore } from '../backing/null-store.ts';
import { openImage } from '../backing/open-store.ts';
import { establish, establishAll } from '../ua/unit-attention.ts';
import { yieldTurn } from '../sbc/bulk.ts';

/** MEDIA EVENT CODE of the media class event descriptor (MMC-6 6.7.2.5 table 337). */
export const MediaEvent = {
  NO_CHANGE: 0x0,
  EJECT_REQUEST: 0x1,
  NEW_MEDIA: 0x2,
  MEDIA_REMOVAL: 0x3,
  MEDIA_CHANGED: 0x4,
} as const;
export type MediaEvent = (typeof MediaEvent)[keyof typeof MediaEvent];

/** CURRENT PROFILE / PROFILE NUMBER (MMC-6 5.3.1 table 89). */
export const Profile = {
  NONE: 0x0000,
  CD_ROM: 0x0008,
} as const;


export class MmcMedium {
  readonly lu: LogicalUnit;
  /** Path of the image in the drive; null: no disc. */
  image: string | null;
  /** The tray is open (ejected by START STOP UNIT). */
  trayOpen = false;
  /** A disc change is in progress: not ready. */
  changing = false;
  /** The last media event and its sequence number (GET EVENT STATUS NOTIFICATION). */
  lastEvent: MediaEvent = MediaEvent.NO_CHANGE;
  eventSeq = 0;
  /** Per I_T nexus handle: the sequence number of the last media event reported to it. */
  readonly #reported = new Map<number, number>();

  constructor(lu: LogicalUnit) {
    this.lu = lu;
    const b = lu.backing;
    this.image = b.type === 'cdrom' ? (b.path ?? null) : null;
    lu.sbc.loadEject = (load, issuer) => this.loadEject(load, issuer);
  }

  /** The LU is open: set the readiness the configuration implies. */
  opened(): void {
    this.#update();
  }

  /** A disc is in and readable. */
  get discPresent(): boolean {
    return this.image !== null && !this.trayOpen && !this.changing;
  }

  /** CURRENT PROFILE of GET CONFIGURATION: CD-ROM with a disc, none without. */
  get currentProfile(): number {
    return this.discPresent ? Profile.CD_ROM : Profile.NONE;
  }

  /** Media removal is prevented by some I_T nexus (PREVENT ALLOW MEDIUM REMOVAL). */
  get locked(): boolean {
    return this.lu.sbc.preventing.size > 0;
  }

  #update(): void {
    const sbc = this.lu.sbc;
    if (this.changing) sbc.setMediumPresent(false, SenseReason.LUN_NOT_READY_BECOMING_READY);
    else if (this.trayOpen) sbc.setMediumPresent(false, SenseReason.MEDIUM_NOT_PRESENT_TRAY_OPEN);
    else if (this.image === null) sbc.setMediumPresent(false, SenseReason.MEDIUM_NOT_PRESENT_TRAY_CLOSED);
    else sbc.setMediumPresent(true);
  }

  #event(code: MediaEvent): void {
    this.lastEvent = code;
    this.eventSeq++;
  }

  /** START STOP UNIT with LOEJ = 1 from I_T nexus `issuer`: close the tray (load) or open it (eject). */
  loadEject(load: boolean, issuer: number): void {
    if (load) {
      if (!this.trayOpen) return;
      this.trayOpen = false;
      this.#update();
      if (this.image !== null) this.#becameReady(issuer);
    } else {
      if (this.trayOpen) return;
      this.trayOpen = true;
      this.#update();
      if (this.image !== null) this.#event(MediaEvent.MEDIA_REMOVAL);
    }
  }

  /** A disc became ready: the I_T nexuses learn it (NOT READY TO READY CHANGE), all but `issuer`. */
  #becameReady(issuer?: number): void {
    if (issuer === undefined) establishAll(this.lu, SenseReason.NOT_READY_TO_READY_CHANGE);
    else establish(this.lu, SenseReason.NOT_READY_TO_READY_CHANGE, issuer);
    this.#event(MediaEvent.NEW_MEDIA);
  }

  /**
   * Put another disc in the drive (`path`), or none (null): a configuration reload.
   * Refused while removal is prevented: an initiator has the disc locked (mounted).
   * Resolves once the new disc is ready.
   */
  async change(path: string | null): Promise<void> {
    const lu = this.lu;
    if (path === this.image && !this.trayOpen) return;
    if (this.locked)
      throw new Error(
        `${lu.name}: medium removal is prevented by ${lu.sbc.preventing.size} I_T nexus(es) (PREVENT ALLOW MEDIUM REMOVAL): release the disc on the initiator first`,
      );
    if (this.changing) throw new Error(`${lu.name}: a disc change is already in progress`);
    // Opened before anything changes: an image that cannot be opened leaves the old disc in.
    const next = path === null ? new NullStore(0) : await openImage(path, lu.device);
    if (path !== null && next.sizeBytes === 0) {
      await next.close();
      throw new Error(`${lu.name}: image ${path} is empty`);
    }
    const hadDisc = this.image !== null && !this.trayOpen;
    this.changing = true;
    this.#update();
    try {
      // Commands already reading the old disc finish first (new ones get NOT READY).
      while (lu.sbc.busy) await yieldTurn();
      const old = lu.store;
      lu.store = next;
      lu.blockCount = Math.floor(next.sizeBytes / lu.blockSize);
      this.image = path;
      this.trayOpen = false;
      await old.close().catch(() => undefined); // a read-only image: nothing to lose
    } finally {
      this.changing = false;
      this.#update();
    }
    if (path !== null) this.#becameReady();
    else if (hadDisc) this.#event(MediaEvent.MEDIA_REMOVAL);
  }

  /**
   * The media event GET EVENT STATUS NOTIFICATION reports to the command's I_T nexus: the
   * last one it has not seen yet (then marked seen), or NO_CHANGE.
   */
  takeMediaEvent(cmd: ScsiCommand): MediaEvent {
    if (this.eventSeq === 0) return MediaEvent.NO_CHANGE;
    if ((this.#reported.get(cmd.nexus) ?? 0) >= this.eventSeq) return MediaEvent.NO_CHANGE;
    this.#reported.set(cmd.nexus, this.eventSeq);
    return this.lastEvent;
  }
}
