import { describe, expect, it } from 'vitest';
import { base62, checksum, findKeys, generateKey, hasValidChecksum, keyPrefix } from '../../src/core/key-format.js';

describe('random key format', () => {
  it('matches the documented layout', () => {
    const key = generateKey('rk_live_');
    expect(key).toMatch(/^rk_live_[0-9A-Za-z]{36}$/);
    expect(hasValidChecksum(key)).toBe(true);
  });

  it('gives a key\'s prefix without a character of its body or checksum, whatever the prefix\'s length', () => {
    expect(keyPrefix(generateKey('rk_live_'))).toBe('rk_live_');
    expect(keyPrefix(generateKey('k'))).toBe('k');
    expect(keyPrefix(generateKey(''))).toBe('');
    // A key inside a longer word: the word's characters before it, the last 32 of them.
    expect(keyPrefix(`${'w'.repeat(40)}${generateKey('rk_')}`)).toBe(`${'w'.repeat(29)}rk_`);
  });

  it('encodes the CRC32 in base62, left-padded to 6', () => {
    expect(base62(0, 6)).toBe('000000');
    expect(base62(61, 6)).toBe('00000z');
    expect(base62(62, 6)).toBe('000010');
    expect(base62(0xffffffff, 6)).toBe('4gfFC3');
    // The CRC-32 (IEEE) check value: crc32("123456789") = 0xCBF43926, base62 computed independently.
    expect(checksum('123456789')).toBe('3jZRME');
    expect(checksum('a'.repeat(30))).toBe('1yLcDB');
  });

  it('rejects a key whose checksum is off by one character', () => {
    const key = generateKey('rk_');
    const last = key.at(-1)!;
    const tampered = key.slice(0, -1) + (last === '0' ? '1' : '0');
    expect(hasValidChecksum(tampered)).toBe(false);
  });

  it('finds keys in text with their line and column numbers, and nothing else', () => {
    const a = generateKey('rk_live_');
    const b = generateKey('');
    const text = `config:\n  key: "${a}"\nrandom: ${'x'.repeat(40)}\n${b} trailing`;
    expect(findKeys(text)).toEqual([
      { line: 2, column: 9, token: a },
      { line: 4, column: 1, token: b },
    ]);
  });

  it('finds exactly what a regular expression over every line finds (the definition), on text full of near misses', () => {
    const reference = (text: string) =>
      text.split('\n').flatMap((content, index) => [...content.matchAll(/[A-Za-z0-9_]{36,}/g)].filter((m) => hasValidChecksum(m[0])).map((m) => ({ line: index + 1, column: m.index + 1, token: m[0] })));
    const pieces = (seed: number) => {
      const keys = [generateKey('rk_live_'), generateKey(''), generateKey('x'), generateKey('a_b_')];
      const noise = ['', ' ', '\n', '\r\n', '_', 'é', '\u{1F511}', '-', '"', 'x'.repeat(35), 'y'.repeat(36), 'z'.repeat(71), 'ab_cd', '\t'];
      let text = '';
      let state = seed;
      const next = () => (state = (state * 1103515245 + 12345) % 2 ** 31);
      for (let i = 0; i < 400; i++) text += next() % 5 === 0 ? keys[next() % keys.length]! : noise[next() % noise.length]!;
      return text;
    };
    for (let seed = 1; seed <= 200; seed++) {
      const text = pieces(seed);
      expect(findKeys(text), `seed ${seed}`).toEqual(reference(text));
    }
    const key = generateKey('');
    for (const text of [key, `${key}\n`, `\n${key}`, `_${key}`, `${key}_`, `é${key}é`, key.slice(1), `${'a'.repeat(35)}\n${key}`]) expect(findKeys(text), text).toEqual(reference(text));
  });
});
