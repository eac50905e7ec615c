// waitForPort (test/support/gateways/process.ts), which every real gateway a test starts is
// waited for with: a port picked free can be taken by another test's process before the gateway
// binds it; that process must not pass for the gateway, which then exits unable to bind.
import { createServer, type Server } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { killUnlessGone, start, waitForPort, type Spawned } from '../support/gateways/process.js';

let server: Server | undefined;
let child: Spawned | undefined;
/** The process the child started: stop() ends the child only, and this one would listen on, orphaned, after the run. */
let grandchild: number | undefined;
afterEach(async () => {
  // A listener that died first (its pid gone) needs no kill; any other failure to kill it is an error.
  if (grandchild) killUnlessGone(grandchild, 'SIGKILL');
  await child?.stop();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = child = grandchild = undefined;
});

const listen = (s: Server) => new Promise<number>((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as { port: number }).port)));

it('refuses a port another process listens on', async () => {
  server = createServer();
  const port = await listen(server);
  child = start('sleep', ['30']);
  await expect(waitForPort(port, child)).rejects.toThrow(/held by another process/);
});

/** A shell whose child (node) binds a port: the listener belongs to a descendant, as a master's worker's would. Resolves with its port. */
async function shellListener(): Promise<number> {
  child = start('sh', ['-c', `node -e "require('net').createServer().listen(0, '127.0.0.1', function () { console.log(this.address().port, process.pid) })"; true`]);
  return new Promise<number>((resolve) => {
    const poll = setInterval(() => {
      const match = /^(\d+) (\d+)$/m.exec(child!.output());
      if (match) resolve((clearInterval(poll), (grandchild = Number(match[2])), Number(match[1])));
    }, 20);
  });
}

it('resolves once the process itself, or a process it started, listens', async () => {
  await waitForPort(await shellListener(), child!);
});

it('cleans up after a listener that died before the test ended (its pid already gone)', async () => {
  await waitForPort(await shellListener(), child!);
  process.kill(grandchild!, 'SIGKILL');
  // The shell reaps it and exits (`; true`): from then on the pid names no process.
  await child!.exited;
  expect(() => process.kill(grandchild!, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
});

it('killUnlessGone tolerates a process already gone, and nothing else', async () => {
  const gone = start('true', []);
  await gone.exited;
  expect(() => killUnlessGone(gone.pid, 'SIGKILL')).not.toThrow();
  expect(() => killUnlessGone(process.pid, 'SIGNOPE' as NodeJS.Signals)).toThrow(expect.objectContaining({ code: 'ERR_UNKNOWN_SIGNAL' }));
});
