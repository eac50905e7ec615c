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

const catalog = providers.with([slowKeysetProvider, slowLocalProvider]);
const SPARE = '--spare';
const argv = process.argv.filter((arg) => arg !== SPARE);
// A spare (processes.ts spareWorker): the modules a worker loads lazily are loaded now, then it
// waits for the test's word before it runs the command; nothing is read or connected before.
if (argv.length < process.argv.length && process.send) {
  await import('../../src/cli/actions/processes.js');
  // The channel (unref'd above) keeps the process alive while it waits.
  process.channel?.ref();
  await new Promise<void>((resolve) => {
    process.once('message', () => resolve());
    process.send!('spare ready');
  });
  process.channel?.unref();
}

process.exitCode = await runCli(argv, catalog);
