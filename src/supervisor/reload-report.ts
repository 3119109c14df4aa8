/**
 * What a configuration reload did, as the admin API and `spindle reload` report it. The
 * SIGHUP path logs the same outcome; this is its structured form.
 *
 *   applied    the new file is in force (changes lists what changed)
 *   unchanged  the file is valid and changes nothing
 *   refused    the file is invalid, or changes something fixed for the run: nothing was
 *              touched (problems names every offending field)
 *   failed     applying it failed (a new backing file could not be opened): the running
 *              configuration stays
 */
import { ConfigError } from './config/issues.ts';
import { errorMessage } from '../shared/control/errors.ts';

export type ReloadOutcome = 'applied' | 'unchanged' | 'refused' | 'failed';

export interface ReloadReport {
  readonly outcome: ReloadOutcome;
  /** Config paths and what is wrong with them (refused, failed). */
  readonly problems: readonly { readonly path: string; readonly message: string }[];
  readonly changes?: {
    readonly added: readonly string[];
    readonly removed: readonly string[];
    readonly grown: readonly string[];
    readonly routes: boolean;
    readonly alua: boolean;
  };
}

/** A reload refused because the file could not be loaded: every issue, with its line. */
export function refusedByLoad(err: unknown): ReloadReport {
  if (err instanceof ConfigError) {
    return {
      outcome: 'refused',
      problems: err.issues.map((i) => ({ path: i.path, message: i.line === undefined ? i.message : `${i.message} (line ${i.line})` })),
    };
  }
  return { outcome: 'refused', problems: [{ path: '', message: errorMessage(err) }] };
}
