/** The lifecycle's rule for the repository's writes. */
import { RekeyError } from '../core/errors.js';
import { canTransition, type VersionRecord, type VersionState } from '../core/model.js';

/** The lifecycle's rule (VERSION_TRANSITIONS), enforced here whoever asks for a change. */
export function refuseIllegal(version: Pick<VersionRecord, 'state' | 'number' | 'secret'>, to: VersionState): void {
  if (!canTransition(version.state, to)) {
    throw new RekeyError('REKEY_ERR_INVALID', `version ${version.number} of ${version.secret} cannot go from ${version.state} to ${to}`);
  }
}
