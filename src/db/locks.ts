/**
 * The secret lock (see repository.ts): every state change of one secret's versions takes its
 * row FOR UPDATE first, so promotions, leak reports and takedowns of one secret serialize.
 * Named statements (src/db/sql.ts); in a batch, the statements after one see what the lock's
 * last holder committed.
 */
import { statement } from './sql.js';

/** The secret lock by the secret's id. */
export const LOCK_SECRET = statement('lock_secret', `SELECT 1 FROM secrets WHERE id = $1 FOR UPDATE`);
/** The secret lock by one of its versions' id; no row for no such version. */
export const LOCK_SECRET_OF_VERSION = statement('lock_secret_of_version', `SELECT 1 FROM secrets WHERE id = (SELECT secret_id FROM versions WHERE id = $1) FOR UPDATE`);
