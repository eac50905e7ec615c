/** Admin API scopes: names, globs, and `admin` including the rest. */
import { expect, it } from 'vitest';
import { Access, globRegExp, parseScope } from '../../src/api/scopes.js';

it('parses scopes with and without a glob, and nothing else', () => {
  expect(parseScope('read')).toEqual({ name: 'read' });
  expect(parseScope('rotate:payments-*')).toEqual({ name: 'rotate', glob: 'payments-*' });
  for (const bad of ['write', 'read:', 'read:a b', 'READ', 'rotate:x:y', '']) expect(parseScope(bad)).toBeUndefined();
});

it('a glob limits a scope to matching names; * spans / (client families); regex characters are literal', () => {
  const access = new Access(['rotate:payments-*', 'read:acme/*', 'revoke:a.b']);
  expect(access.allows('rotate', 'payments-api')).toBe(true);
  expect(access.allows('rotate', 'billing-api')).toBe(false);
  expect(access.allows('rotate')).toBe(false); // no secret: needs the scope without a glob
  expect(access.allows('read', 'acme/globex')).toBe(true);
  expect(access.allows('revoke', 'aXb')).toBe(false);
  expect(access.allows('revoke', 'a.b')).toBe(true);
  expect(access.holds('rotate')).toBe(true);
  expect(access.holds('admin')).toBe(false);
});

it('admin includes read, rotate and revoke, within its glob', () => {
  const all = new Access(['admin']);
  for (const scope of ['read', 'rotate', 'revoke', 'admin'] as const) expect(all.allows(scope)).toBe(true);
  const some = new Access(['admin:team-*']);
  expect(some.allows('revoke', 'team-x')).toBe(true);
  expect(some.allows('revoke', 'other')).toBe(false);
  expect(some.allows('read')).toBe(false);
});

it('a glob matches as * spans any run of characters, and in time linear in the name: a scope of many stars holds nothing up', () => {
  const cases: Array<[string, string, boolean]> = [
    ['*', '', true],
    ['a*b*b', 'ab', false],
    ['a*b*b', 'abb', true],
    ['*-api', 'payments-api', true],
    ['*a*-*p**', 'payments-web', false],
    ['pay*ments', 'payments', true],
    ['a.b*', 'aXb', false],
  ];
  for (const [glob, name, matches] of cases) expect([glob, name, globRegExp(glob).test(name)]).toEqual([glob, name, matches]);
  const started = performance.now();
  expect(new Access([`read:${'*'.repeat(20)}x`]).allows('read', 'payments-api')).toBe(false);
  expect(performance.now() - started).toBeLessThan(100);
});
