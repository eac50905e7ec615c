/**
 * AES-256-GCM sealing for the local store. The additional authenticated data binds a
 * ciphertext to its secret and version, so rows cannot be swapped between secrets.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

const IV = 12;
const TAG = 16;

export interface SealingKey {
  bytes: Buffer;
  /** First 8 hex chars of SHA-256(key): recorded per row so a wrong key is named, not guessed. */
  id: string;
}

export function sealingKey(bytes: Buffer): SealingKey {
  return { bytes: bytes.subarray(0, 32), id: createHash('sha256').update(bytes.subarray(0, 32)).digest('hex').slice(0, 8) };
}

export function seal(key: SealingKey, plaintext: string, aad: string): Buffer {
  const iv = randomBytes(IV);
  const cipher = createCipheriv('aes-256-gcm', key.bytes, iv);
  cipher.setAAD(Buffer.from(aad));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

/** @throws Error when the key is wrong or the row was tampered with. */
export function open(key: SealingKey, sealed: Buffer, aad: string): string {
  const decipher = createDecipheriv('aes-256-gcm', key.bytes, sealed.subarray(0, IV));
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(sealed.subarray(IV, IV + TAG));
  return Buffer.concat([decipher.update(sealed.subarray(IV + TAG)), decipher.final()]).toString('utf8');
}
