/** `rekey` with the test-only providers registered, for tests that run real worker processes. */
import { runCli } from '../../src/cli/main.js';
import { providers } from '../../src/registry.js';
import { slowKeysetProvider, slowLocalProvider } from './slow-providers.js';

// Spawned by test/support/processes.ts with an IPC channel: when the test process is gone,
// so is this one (SIGKILL, like an orphan reaped by its supervisor), whatever it was doing.
if (process.channel) {
  process.channel.unref();
  process.once('disconnect', () => process.kill(process.pid, 'SIGKILL'));
  if (!process.connected) process.kill(process.pid, 'SIGKILL');
}

process.exitCode = await runCli(process.argv, providers.with([slowKeysetProvider, slowLocalProvider]));
