/**
 * `rekey agent`'s per-host token file (`--request-token-file`): created 0600 with a random token
 * when missing, and an existing one used only when it is a regular file of the agent's user that
 * no other user may read or write. A token another user planted, or can read, would let that
 * user's processes call the agent on loopback and read every value it serves.
 */
import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { requestToken } from '../../src/agent/run.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rekey-agent-token-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const root = process.getuid?.() === 0;

it('creates a missing file 0600 with a random token, and reads it back the next time', async () => {
  const path = join(dir, 'agent-token');
  const token = await requestToken(path);
  expect(token).toMatch(/^[\w-]{43}$/);
  expect((await stat(path)).mode & 0o777).toBe(0o600);
  expect(await requestToken(path)).toBe(token);
});

it('refuses an existing file that other users may read or write', async () => {
  for (const mode of [0o644, 0o640, 0o604, 0o620, 0o602]) {
    const path = join(dir, `mode-${mode.toString(8)}`);
    await writeFile(path, 'planted-token\n');
    await chmod(path, mode);
    await expect(requestToken(path)).rejects.toThrow(/other users/);
  }
});

it.skipIf(!root)('refuses an existing file of another user, also through a symbolic link', async () => {
  const path = join(dir, 'agent-token');
  await writeFile(path, 'planted-token\n', { mode: 0o600 });
  await chown(path, 65534, 65534);
  await expect(requestToken(path)).rejects.toThrow(/another user/);
  const link = join(dir, 'link');
  await symlink(path, link);
  await expect(requestToken(link)).rejects.toThrow(/another user/);
});

it('refuses what is not a regular file (a FIFO would hang the read)', async () => {
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', ['-m', '600', fifo]);
  await expect(requestToken(fifo)).rejects.toThrow(/not a regular file/);
}, 5_000);
