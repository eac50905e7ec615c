/**
 * `rekey agent`'s templates (src/agent/templates.ts): a value reaches the disk only in the
 * destination file, 0600. A link planted beside it, where a temporary file could be written,
 * is never written through. A destination that already holds the rendered text is left as it
 * is only when it is a regular file no other user may read: otherwise (a file made readable to
 * all, a link to another file) it is replaced by a 0600 file, though the text is the same.
 * A write that fails leaves the old file and no temporary file beside it.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { chmod, lstat, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { renderTemplates, type Template } from '../../src/agent/templates.js';

const VALUE = 'rk_live_template_value_0123456789';
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rekey-templates-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const template = (destination: string): Template => ({ source: 'app.env.tmpl', destination, text: 'KEY={{ secret "k" }}\n', secrets: ['k'], audiences: [] });
const read = { secret: () => Promise.resolve(VALUE), token: () => Promise.resolve('unused') };

it('writes the value into the destination only, never through a link planted beside it', async () => {
  const destination = join(dir, 'app.env');
  const elsewhere = join(dir, 'elsewhere');
  await writeFile(elsewhere, '', { mode: 0o666 });
  // The name the temporary file had: a link there pointed the write at another file.
  await symlink(elsewhere, join(dir, '.app.env.rekey-tmp'));
  expect(await renderTemplates([template(destination)], read)).toBe(1);
  expect(await readFile(elsewhere, 'utf8')).toBe('');
  const written = await lstat(destination);
  expect(written.isFile()).toBe(true);
  expect(written.mode & 0o777).toBe(0o600);
  expect(await readFile(destination, 'utf8')).toBe(`KEY=${VALUE}\n`);
});

it('replaces a destination holding the same text that others may read, or that is a link, with a 0600 file', async () => {
  const destination = join(dir, 'app.env');
  await writeFile(destination, `KEY=${VALUE}\n`);
  await chmod(destination, 0o644); // written by an older agent, or chmod'ed to debug
  expect(await renderTemplates([template(destination)], read)).toBe(0); // the same text: nothing for the process to hear
  expect((await lstat(destination)).mode & 0o777).toBe(0o600);

  const linked = join(dir, 'linked.env');
  const target = join(dir, 'target.env');
  await writeFile(target, `KEY=${VALUE}\n`, { mode: 0o644 });
  await chmod(target, 0o644);
  await symlink(target, linked);
  expect(await renderTemplates([template(linked)], read)).toBe(1); // a link is not read through: its text is not known the same
  const written = await lstat(linked);
  expect(written.isFile()).toBe(true);
  expect(written.mode & 0o777).toBe(0o600);
  expect((await lstat(target)).mode & 0o777).toBe(0o644);
});

it('replaces a FIFO at the destination with the file, instead of waiting for a writer that never comes', async () => {
  const destination = join(dir, 'app.env');
  execFileSync('mkfifo', [destination]);
  expect(await renderTemplates([template(destination)], read)).toBe(1);
  const written = await lstat(destination);
  expect(written.isFile()).toBe(true);
  expect(written.mode & 0o777).toBe(0o600);
  expect(await readFile(destination, 'utf8')).toBe(`KEY=${VALUE}\n`);
});

/** Renders `destination` from a child process run through `wrapper` (argv before node's); its stdout and stderr. */
function renderInChild(wrapper: string[], destination: string) {
  const script = `
    import { renderTemplates } from ${JSON.stringify(new URL('../../src/agent/templates.ts', import.meta.url).pathname)};
    const template = { source: 'app.env.tmpl', destination: process.env.DESTINATION, text: 'KEY={{ secret "k" }}\\n', secrets: ['k'], audiences: [] };
    await renderTemplates([template], { secret: async () => 'rk_new_value', token: async () => '' }).then(() => console.log('written'), (error) => console.log(error.code));`;
  const [command, ...args] = [...wrapper, process.execPath, '--import', 'tsx', '--input-type=module', '-e', script];
  return promisify(execFile)(command, args, { env: { ...process.env, DESTINATION: destination } });
}

it('leaves no temporary file, and the old file as it was, when the write itself fails', async () => {
  const destination = join(dir, 'app.env');
  await writeFile(destination, 'KEY=old\n', { mode: 0o600 });
  // A process that may create files but not grow them (RLIMIT_FSIZE 0; Node ignores SIGXFSZ): the
  // temporary file is created, then its write fails with EFBIG, as a full disk fails it with ENOSPC.
  const { stdout } = await renderInChild(['bash', '-c', 'ulimit -f 0 && exec "$@"', 'bash'], destination);
  expect(stdout.trim()).toBe('EFBIG');
  expect(await readdir(dir)).toEqual(['app.env']);
  expect(await readFile(destination, 'utf8')).toBe('KEY=old\n');
});

const strace = spawnSync('strace', ['-V']).status === 0;

// After a power loss a renamed file whose data was never synced can be empty: the data is synced before the rename, the directory after it.
it.skipIf(!strace)('syncs the temporary file before the rename, and the directory after it', async () => {
  const destination = join(dir, 'app.env');
  const { stdout, stderr } = await renderInChild(['strace', '-f', '-qq', '-y', '-e', 'trace=fsync,fdatasync,rename,renameat,renameat2'], destination);
  expect(stdout.trim()).toBe('written');
  const calls = stderr
    .split('\n')
    .map((line) => /(fsync|fdatasync|rename\w*)\((.*)\)\s*= 0/.exec(line))
    .filter((match) => match !== null)
    .map(([, call, args]) => (call!.startsWith('rename') ? 'rename' : /<(.*)>/.exec(args!)![1]!.replace(/\.app\.env\.[0-9a-f-]+\.\w+$/, '.app.env.TMP')))
    .filter((what) => what === 'rename' || what.startsWith(dir));
  expect(calls).toEqual([join(dir, '.app.env.TMP'), 'rename', dir]);
});
