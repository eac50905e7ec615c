// waitForPort (test/support/gateways/process.ts), which every real gateway a test starts is
// waited for with: a port picked free can be taken by another test's process before the gateway
// binds it; that process must not pass for the gateway, which then exits unable to bind.
import { createServer, type Server } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { start, waitForPort, type Spawned } from '../support/gateways/process.js';

let server: Server | undefined;
let child: Spawned | undefined;
/** The process the child started: stop() ends the child only, and this one would listen on, orphaned, after the run. */
let grandchild: number | undefined;
afterEach(async () => {
  if (grandchild) process.kill(grandchild, 'SIGKILL');
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

it('resolves once the process itself, or a process it started, listens', async () => {
  // A shell whose child (node) binds the port: the listener belongs to a descendant, as a master's worker's would.
  child = start('sh', ['-c', `node -e "require('net').createServer().listen(0, '127.0.0.1', function () { console.log(this.address().port, process.pid) })"; true`]);
  const port = await new Promise<number>((resolve) => {
    const poll = setInterval(() => {
      const match = /^(\d+) (\d+)$/m.exec(child!.output());
      if (match) resolve((clearInterval(poll), (grandchild = Number(match[2])), Number(match[1])));
    }, 20);
  });
  await waitForPort(port, child);
});
