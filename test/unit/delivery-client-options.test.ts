/**
 * The client library's options are checked when the client is made: a `refreshAt` above 1 would
 * hand a cached token or value out after it expired (renewed only past its lifetime), one of 0 or
 * below would ask the server on every call; either is refused at once, naming the option.
 */
import { expect, it } from 'vitest';
import { createClient } from '../../src/client/index.js';

const make = (refreshAt: number) => () => createClient({ url: 'http://127.0.0.1:9', credential: () => 'credential', refreshAt });

it('refuses a refreshAt outside (0, 1]', () => {
  for (const refreshAt of [1.5, 2, 0, -0.5, Number.NaN]) expect(make(refreshAt), `refreshAt ${refreshAt}`).toThrow(/refreshAt/);
});

it('takes a refreshAt within (0, 1]', () => {
  for (const refreshAt of [0.1, 0.75, 1]) expect(make(refreshAt)).not.toThrow();
});
