// keySlot (src/queue/connection.ts) against slots a cluster-enabled redis-server 7.0 named
// (`CLUSTER KEYSLOT`): the hash tag's rules included (the first `{`, the next `}`, an empty tag hashes the whole key).
import { expect, it } from 'vitest';
import { keySlot } from '../../src/queue/connection.js';

it('computes the Cluster slot Redis computes, hash tags included', () => {
  const slots = {
    foo: 12182,
    somekey: 11058,
    hello: 866,
    '{rekey}': 3177,
    '{rekey}:notifications': 3177,
    '{test-abc}:notifications:meta': 14654,
    'a{}b': 13694,
    '{}{x}': 3257,
    'x{y}z{w}': 12222,
    '': 0,
  };
  expect(Object.fromEntries(Object.keys(slots).map((key) => [key, keySlot(key)]))).toEqual(slots);
});
