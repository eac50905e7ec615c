import { describe, expect, it } from 'vitest';
import { timed } from '../../src/core/call.js';
import { ProviderError } from '../../src/core/errors.js';
import type { Call } from '../../src/core/ports.js';

/** A provider call that never answers, keeping the Call it was given. */
function hanging(): { fn: (call: Call) => Promise<never>; call: () => Call } {
  let given: Call | undefined;
  return {
    fn: (call) => {
      given = call;
      return new Promise<never>(() => undefined);
    },
    call: () => given!,
  };
}

describe('timed (a provider call under its timeout)', () => {
  it('fails a call that outlives its timeout with a retryable REKEY_ERR_TIMEOUT naming the provider, and aborts its signal', async () => {
    let aborted: Promise<void> | undefined;
    const failure = await timed('store.read:vault', 20, (call) => {
      // Read before the deadline: aborted at it.
      aborted = new Promise((resolve) => call.signal.addEventListener('abort', () => resolve()));
      return new Promise<never>(() => undefined);
    }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ProviderError);
    expect(failure).toMatchObject({ code: 'REKEY_ERR_TIMEOUT', retryable: true, provider: 'vault', message: 'store.read:vault took longer than 20 ms' });
    await aborted;
  });

  it('hands a provider that reads its signal only after the deadline an aborted one', async () => {
    const provider = hanging();
    await expect(timed('target.deploy:gw', 20, provider.fn)).rejects.toMatchObject({ code: 'REKEY_ERR_TIMEOUT' });
    expect(provider.call().signal.aborted).toBe(true);
  });

  it('answers with the call’s result or its own error, the signal not aborted', async () => {
    let call: Call | undefined;
    expect(
      await timed('issuer.issue:random', 60_000, (c) => {
        call = c;
        return Promise.resolve('issued');
      }),
    ).toBe('issued');
    expect(call!.signal.aborted).toBe(false);
    const own = new ProviderError('REKEY_ERR_DENIED', 'no', { provider: 'gw' });
    await expect(timed('target.deploy:gw', 60_000, () => Promise.reject(own))).rejects.toBe(own);
    const thrown = new Error('thrown before any promise');
    await expect(
      timed('target.deploy:gw', 60_000, () => {
        throw thrown;
      }),
    ).rejects.toBe(thrown);
  });

  it('passes a drift repair’s generation, and no generation key otherwise', async () => {
    const seen: Call[] = [];
    const keep = (call: Call) => Promise.resolve(void seen.push(call));
    await timed('target.deploy:gw', 60_000, keep, 'r123');
    await timed('target.deploy:gw', 60_000, keep);
    expect(seen[0]!.generation).toBe('r123');
    expect('generation' in seen[1]!).toBe(false);
  });
});
