import { parseDocument } from 'yaml';
import { describe, expect, it } from 'vitest';
import { readQuickly } from '../../src/config/yaml-fast.js';

/** What load.ts reads with the `yaml` library. */
const fully = (text: string): unknown => parseDocument(text, { uniqueKeys: false }).toJS({ maxAliasCount: 100 });

describe('readQuickly', () => {
  it('reads scalars as the yaml library does (YAML 1.2 core schema)', () => {
    const text = [
      'a: 1_000', 'b: 0o17', 'c: 017', 'd: .inf', 'e: -.Inf', 'f: 0x1F', 'g: +12', 'h: 1e3', 'i: .5', 'j: yes', 'k: True', 'l: NULL',
      'm: 2024-01-01', 'n: "a\\x41"', 'o: !!str 12', 'p: 0b101', 'q: +.5', 'r: 1.', 's: ~', 't:', 'u: FALSE', 'v: .NaN', 'w: 1e', 'x: 0o8',
      'y: -0x1', 'z: "12"', 'aa: 12:30', 'ab: -0', 'ac: 0.0', 'ad: 0e0', "ae: 'it''s'", 'af: |\n  x\n  y', 'ag: >-\n  p\n  q', '__proto__: {x: 1}',
      'ah: [1, "2", {b: c}]', '0x10: hex key', '1.50: float key', 'true: bool key',
    ].join('\n');
    expect(readQuickly(text)).toEqual(fully(text));
  });

  it.each([
    ['a null key', '~: 1\n'],
    ['a collection as a key', '? [a, b]\n: 1\n'],
    ['an anchor and alias', 'a: &x {b: 1}\nc: *x\n'],
    ['a YAML 1.1 directive', '%YAML 1.1\n---\na: yes\n'],
    ['two documents', 'a: 1\n---\nb: 2\n'],
    ['an unknown tag', 'a: !foo 1\n'],
    ['an explicit tag the pattern does not match', 'a: !!float 1\n'],
    ['a syntax error', 'secrets:\n  a: [unclosed\n'],
    ['a duplicate key', 'secrets: {}\nsecrets: {}\n'],
  ])('leaves %s to the yaml library', (_, text) => {
    expect(readQuickly(text)).toBeUndefined();
  });

  it('reads empty documents, comments only, sequences and plain text alike', () => {
    for (const text of ['', '# c\n', '- a\n- b\n', 'just text\n']) expect(readQuickly(text)).toEqual(fully(text));
  });

  it('reads a generated fleet config alike', () => {
    const lines = ['providers:', '  vault: { type: local }', '  api: { type: redis-keyset, keyPrefix: "x:keyset:" }', 'secrets:'];
    for (let i = 0; i < 2000; i++) lines.push(`  key-${i}: { store: { provider: vault }, issuer: { type: random }, targets: [api], grace: 1h, schedule: { cron: "${i % 60} ${i % 24} 1 6 *" } }`);
    const text = `${lines.join('\n')}\n`;
    expect(readQuickly(text)).toEqual(fully(text));
  });
});
