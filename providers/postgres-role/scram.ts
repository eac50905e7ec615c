/**
 * SCRAM-SHA-256 password verifiers (RFC 5802 / RFC 7677), in the text form PostgreSQL stores
 * in pg_authid.rolpassword. `ALTER ROLE ... PASSWORD '<verifier>'` stores it as is, so the
 * plaintext never reaches the server, its statement log, or pg_stat_statements (this is what
 * psql's \password and libpq's PQencryptPasswordConn do).
 */
import { createHash, createHmac, pbkdf2, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);

/** PostgreSQL's default iteration count (scram_iterations). */
export const SCRAM_ITERATIONS = 4096;

/**
 * `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` for `password`. The password must be
 * ASCII without control characters (rekey's are base64url), for which SASLprep is the identity.
 */
export async function scramVerifier(password: string, salt = randomBytes(16), iterations = SCRAM_ITERATIONS): Promise<string> {
  if (!/^[\x21-\x7e]+$/.test(password)) throw new TypeError('scramVerifier: password must be printable ASCII');
  const salted = await pbkdf2Async(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}
