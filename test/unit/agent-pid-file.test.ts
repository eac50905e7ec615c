/**
 * `rekey agent --pid-file`: the process to signal when a rendered file changed is the one whose
 * pid the file holds, and only if that process is the one that wrote it. A pid file outlives its
 * process (a crash, a kill -9), and the kernel hands the pid to the next process that starts: as
 * root the agent's SIGHUP (whose default action ends a process) would reach that one instead.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { pidFrom } from '../../src/agent/run.js';

let dir: string;
let child: ChildProcess | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rekey-agent-pid-'));
});
afterEach(async () => {
  if (child?.exitCode === null) child.kill('SIGKILL');
  child = undefined;
  await rm(dir, { recursive: true, force: true });
});

const started = async () => {
  child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  await new Promise((resolve) => child!.once('spawn', resolve));
  return child.pid!;
};

it('names the process that wrote the pid file', async () => {
  const pid = await started();
  const path = join(dir, 'app.pid');
  await writeFile(path, `${pid}\n`);
  expect(await pidFrom(path)()).toBe(pid);
});

it('names no process when the pid in the file belongs to a process started after the file was written (the pid reused)', async () => {
  const pid = await started();
  const path = join(dir, 'app.pid');
  await writeFile(path, `${pid}\n`);
  // Written an hour ago by a process that has since exited; its pid now belongs to the one just started.
  const hourAgo = new Date(Date.now() - 3_600_000);
  await utimes(path, hourAgo, hourAgo);
  expect(await pidFrom(path)()).toBeUndefined();
});

it('names no process when the file holds no pid', async () => {
  const path = join(dir, 'app.pid');
  await writeFile(path, 'not a pid\n');
  expect(await pidFrom(path)()).toBeUndefined();
  expect(await pidFrom(join(dir, 'missing.pid'))()).toBeUndefined();
});
