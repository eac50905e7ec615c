/**
 * File paths in a provider's config (a gateway's map file, its main config, a PID file):
 * absolute and already normalized, so each names exactly one file whatever the working
 * directory and whatever sits in between: no `.` or `..` segments, no doubled or trailing
 * slash, no whitespace or control characters.
 */
import { posix } from 'node:path';
import { z } from 'zod';

/** Whether `path` is absolute and normalized (see the module comment). */
export function isNormalAbsolutePath(path: string): boolean {
  return path.startsWith('/') && path.length > 1 && !path.endsWith('/') && !/[\s\p{Cc}]/u.test(path) && posix.normalize(path) === path && !path.split('/').includes('..');
}

/** Zod schema of such a path. */
export const absolutePath = z
  .string()
  .max(4096)
  .refine(isNormalAbsolutePath, 'must be an absolute, normalized path: starting with /, no . or .. segments, no // or trailing /, no spaces');
