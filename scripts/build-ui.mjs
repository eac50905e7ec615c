#!/usr/bin/env node
// `npm run build:ui` (and the end of `npm run build`): the dashboard into dist/ui, which
// `rekey server` serves at /ui (src/dashboard/assets.ts). tsc compiles the browser modules of
// src/dashboard/client to plain ES modules (no bundler, no framework) in dist/ui/assets; the
// page, the stylesheet and the icon are copied beside them.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const client = join(root, 'src', 'dashboard', 'client');
const out = join(root, 'dist', 'ui');

export function buildUi() {
  rmSync(out, { recursive: true, force: true });
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', join(client, 'tsconfig.json')], { stdio: 'inherit' });
  mkdirSync(join(out, 'assets'), { recursive: true });
  copyFileSync(join(client, 'static', 'index.html'), join(out, 'index.html'));
  for (const file of ['app.css', 'favicon.svg']) copyFileSync(join(client, 'static', file), join(out, 'assets', file));
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) buildUi();
