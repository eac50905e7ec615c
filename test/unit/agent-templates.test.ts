/**
 * `rekey agent`'s templates (src/agent/templates.ts): a value reaches the disk only in the
 * destination file, 0600. A link planted beside it, where a temporary file could be written,
 * is never written through. A destination that already holds the rendered text is left as it
 * is only when it is a regular file no other user may read: otherwise (a file made readable to
 * all, a link to another file) it is replaced by a 0600 file, though the text is the same.
 */
import { execFileSync } from 'node:child_process';
import { chmod, lstat, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
