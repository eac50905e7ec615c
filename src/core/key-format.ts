/**
 * rekey's API key format: `<prefix><30 base62 chars><CRC32 of those 30 chars, base62, 6 chars>`,
 * alphabet 0-9A-Za-z, checksum left-padded with 0 (the layout of GitHub's and npm's tokens).
 * The checksum lets a scanner recognise a real rekey key offline with no false positives
 * worth mentioning (1 in 62^6 ≈ 5.7e10 for a random string), so leaks get reported at all.
 */
import { randomInt } from 'node:crypto';
import { crc32 } from 'node:zlib';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
export const BODY_LENGTH = 30;
export const CHECKSUM_LENGTH = 6;
export const PREFIX_PATTERN = /^[A-Za-z0-9_]{0,32}$/;

export function base62(n: number, width: number): string {
  let out = '';
  for (let rest = n; rest > 0; rest = Math.floor(rest / 62)) out = ALPHABET[rest % 62] + out;
  return out.padStart(width, '0');
}

export function checksum(body: string): string {
  return base62(crc32(body), CHECKSUM_LENGTH);
}

/** A fresh key: 30 uniformly random base62 characters (≈178 bits) and their checksum. */
export function generateKey(prefix: string): string {
  if (!PREFIX_PATTERN.test(prefix)) throw new TypeError('a prefix is up to 32 characters of A-Z a-z 0-9 _');
  let body = '';
  for (let i = 0; i < BODY_LENGTH; i++) body += ALPHABET[randomInt(62)];
  return prefix + body + checksum(body);
}

/** Whether a token ends in a valid body + checksum. */
export function hasValidChecksum(token: string): boolean {
  if (token.length < BODY_LENGTH + CHECKSUM_LENGTH) return false;
  const tail = token.slice(-(BODY_LENGTH + CHECKSUM_LENGTH));
  if (!/^[0-9A-Za-z]+$/.test(tail)) return false;
  return checksum(tail.slice(0, BODY_LENGTH)) === tail.slice(BODY_LENGTH);
}

/** How many characters of a key's prefix {@link keyPrefix} gives: a prefix is at most 32 ({@link PREFIX_PATTERN}). */
const MAX_PREFIX = 32;

/**
 * The part of a found key that is not secret: what comes before its random body and checksum (the
 * issuer's prefix, e.g. `rk_live_`; for a key inside a longer word, the characters before it, at most
 * the last 32). Never a character of the body or checksum, whatever the prefix's length.
 */
export function keyPrefix(token: string): string {
  return token.slice(0, Math.max(0, token.length - BODY_LENGTH - CHECKSUM_LENGTH)).slice(-MAX_PREFIX);
}

export interface Found {
  /** 1-based. */
  line: number;
  /** 1-based, in UTF-16 code units (as SARIF's default column kind). */
  column: number;
  token: string;
}

/** Characters a candidate is made of ([A-Za-z0-9_], the prefix alphabet), by char code. */
const WORD = new Uint8Array(128);
for (const c of '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_') WORD[c.charCodeAt(0)] = 1;
const isWord = (code: number) => code < 128 && WORD[code] === 1;

/**
 * Every rekey key in a text. A candidate is a maximal run of [A-Za-z0-9_] (the prefix
 * alphabet) whose last 36 characters are a body and a matching checksum.
 *
 * Only every 36th character is looked at until one is a word character: a run of 36 or more
 * always holds one of them, so the text between two non-word samples cannot hide a key. A
 * word character found is grown to its whole run. Code is mostly short words, so this reads a
 * fraction of the text (a regular expression over every character ran at a tenth of the speed
 * of reading the files; bench/usage measures both).
 */
export function findKeys(text: string): Found[] {
  const found: Found[] = [];
  const min = BODY_LENGTH + CHECKSUM_LENGTH;
  let line = 1;
  let lineStart = 0;
  let counted = 0;
  for (let i = min - 1; i < text.length; ) {
    if (!isWord(text.charCodeAt(i))) {
      i += min;
      continue;
    }
    let start = i;
    while (start > 0 && isWord(text.charCodeAt(start - 1))) start--;
    let end = i + 1;
    while (end < text.length && isWord(text.charCodeAt(end))) end++;
    if (end - start >= min) {
      const token = text.slice(start, end);
      if (hasValidChecksum(token)) {
        for (let nl = text.indexOf('\n', counted); nl !== -1 && nl < start; nl = text.indexOf('\n', nl + 1)) {
          line++;
          lineStart = nl + 1;
        }
        counted = start;
        found.push({ line, column: start - lineStart + 1, token });
      }
    }
    // text[end] is not a word character: the next run starts after it.
    i = end + min;
  }
  return found;
}
