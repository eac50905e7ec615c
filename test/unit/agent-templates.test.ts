/**
 * `rekey agent`'s templates (src/agent/templates.ts): a value reaches the disk only in the
 * destination file, 0600. A link planted beside it, where a temporary file could be written,
 * is never written through.
 */
import { lstat, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
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
