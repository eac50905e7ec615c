/**
 * HAProxy's master CLI (master-worker mode, `haproxy -W -S <socket>`): a reload re-reads
 * haproxy.cfg and the files it names in a new worker, while the listening sockets stay open
 * and the old worker finishes the requests it holds, so no connection is refused. The master
 * re-executes itself on `reload` (its socket refuses connections for a moment); `show proc`
 * then counts one more reload, and a non-zero `failed` when the new configuration did not load
 * (the old worker then keeps serving). Reference: HAProxy 2.6 management guide, 9.4 "Master CLI".
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ProviderError } from '../../src/core/errors.js';
import { runtimeCommand, RuntimeTransportError, type RuntimeEndpoint } from './runtime-api.js';

interface ProcState {
  reloads: number;
  failed: number;
}

/** Milliseconds between two `show proc` while the master comes back. */
const POLL_MS = 20;

/**
 * Reloads HAProxy and resolves once the master reports the reload done.
 * @throws ProviderError REKEY_ERR_UNAVAILABLE when the master cannot be reached or the new
 * configuration failed to load; REKEY_ERR_TIMEOUT when the reload is not done within `timeoutMs`.
 */
export async function reloadHaproxy(endpoint: RuntimeEndpoint, signal: AbortSignal, timeoutMs: number, provider: string): Promise<void> {
  const deadline = AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
  const fail = (code: 'REKEY_ERR_UNAVAILABLE' | 'REKEY_ERR_TIMEOUT', message: string, cause?: unknown) => new ProviderError(code, message, { provider, cause });
  const before = await showProc(endpoint, deadline).catch((error: unknown) => {
    throw fail('REKEY_ERR_UNAVAILABLE', `the master CLI cannot be reached (${error instanceof RuntimeTransportError ? (error.code ?? 'error') : 'error'})`, error);
  });
  await runtimeCommand(endpoint, 'reload', deadline, timeoutMs).catch((error: unknown) => {
    throw fail('REKEY_ERR_UNAVAILABLE', 'the master CLI did not take the reload', error);
  });
  for (;;) {
    if (deadline.aborted) throw fail('REKEY_ERR_TIMEOUT', `HAProxy did not finish reloading within ${timeoutMs}ms`);
    // Refused while the master re-executes itself: ask again.
    const after = await showProc(endpoint, deadline).catch(() => undefined);
    if (after && after.reloads > before.reloads) {
      if (after.failed > 0) throw fail('REKEY_ERR_UNAVAILABLE', 'HAProxy could not load its configuration on reload (its log says why); the previous keys stay in effect');
      return;
    }
    await sleep(POLL_MS);
  }
}

async function showProc(endpoint: RuntimeEndpoint, signal: AbortSignal): Promise<ProcState> {
  const answer = await runtimeCommand(endpoint, 'show proc', signal, 5000);
  const master = /^\d+\s+master\s+(\d+)\s+\[failed:\s*(\d+)\]/m.exec(answer);
  if (!master) throw new RuntimeTransportError('show proc named no master (is this the master CLI?)', undefined);
  return { reloads: Number(master[1]), failed: Number(master[2]) };
}
