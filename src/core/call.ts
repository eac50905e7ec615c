import { ProviderError, RekeyError } from './errors.js';
import type { Call } from './ports.js';

/**
 * Runs one provider call under a timeout. The provider gets an AbortSignal; if it
 * ignores it, the call is abandoned anyway and fails with a retryable TIMEOUT.
 */
export async function timed<T>(label: string, timeoutMs: number, fn: (call: Call) => Promise<T>, generation?: string): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(new ProviderError('REKEY_ERR_TIMEOUT', `${label} took longer than ${timeoutMs} ms`, { provider: label.split(':')[1] ?? label }));
    }, timeoutMs);
  });
  try {
    return await Promise.race([fn(generation === undefined ? { signal: controller.signal } : { signal: controller.signal, generation }), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs calls in parallel and waits for all of them; when some fail, throws the first
 * failure, marked retryable only if every failure was.
 */
export async function allOrFirstError(tasks: Array<Promise<unknown>>): Promise<void> {
  throwFirstError(await Promise.allSettled(tasks));
}

/** Throws the first failure of settled calls, marked retryable only if every failure was (see {@link allOrFirstError}). */
export function throwFirstError(results: ReadonlyArray<PromiseSettledResult<unknown>>): void {
  const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  if (failures.length === 0) return;
  const first = failures[0];
  const allRetryable = failures.every((f) => !(f instanceof RekeyError) || f.retryable);
  if (first instanceof RekeyError && first.retryable !== allRetryable) {
    throw new RekeyError(first.code, first.message, { retryable: allRetryable, provider: first.provider, cause: first });
  }
  throw first;
}
