// `rekey scan` throughput on a generated tree, with a bare baseline in the same run: reading the
// same files with plain fs (readFile, utf8). The tree looks like a repository: lines of short
// tokens, some long base62/base64 runs (hashes, lockfile integrity strings: the candidates the
// checksum must reject), and `keys` real rekey keys, each of which the scan must find.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { scan } from '../../src/cli/scan.js';
import { type CliContext, ExitCode } from '../../src/cli/context.js';
import { generateKey } from '../../src/core/key-format.js';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const CODE = 'abcdefghijklmnopqrstuvwxyz_ABCDEFGHIJ0123456789      ().,;=:{}"\'';

function line(bytes: Buffer, at: number, long: boolean): string {
  const chars = long ? ALPHABET : CODE;
  let out = '';
  const length = long ? 64 + (bytes[at]! % 32) : 20 + (bytes[at]! % 80);
  for (let i = 1; i <= length; i++) out += chars[bytes[(at + i) % bytes.length]! % chars.length];
  return out;
}

/** Writes `files` files of about `megabytes / files` MB under `dir`, `keys` keys among them. */
export async function generateTree(dir: string, megabytes: number, files: number, keys: number): Promise<{ bytes: number; keys: string[] }> {
  const perFile = Math.round((megabytes * 1024 * 1024) / files);
  const planted: string[] = [];
  let bytes = 0;
  for (let f = 0; f < files; f++) {
    const sub = join(dir, `pkg${f % 20}`, `mod${f % 7}`);
    await mkdir(sub, { recursive: true });
    const random = randomBytes(1 << 16);
    const lines: string[] = [];
    let size = 0;
    for (let i = 0; size < perFile; i++) {
      const text = line(random, (i * 131) % random.length, i % 20 === 0);
      lines.push(text);
      size += text.length + 1;
    }
    if (f < keys) {
      const key = generateKey('rk_live_');
      planted.push(key);
      lines[Math.floor(lines.length / 2)] = `  apiKey: "${key}",`;
    }
    const content = lines.join('\n');
    bytes += Buffer.byteLength(content);
    await writeFile(join(sub, `file${f}.ts`), content);
  }
  return { bytes, keys: planted };
}

async function readAll(dir: string): Promise<number> {
  let bytes = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) bytes += (await readFile(join(entry.parentPath, entry.name), 'utf8')).length;
  }
  return bytes;
}

/** Runs `rekey scan DIR` in this process (its output collected); returns the keys it printed. */
async function scanTree(dir: string): Promise<number> {
  const out: string[] = [];
  const ctx = { out: (text: string) => out.push(text) } as unknown as CliContext;
  await scan(ctx, [dir], { format: 'text' }, (message) => {
    throw new Error(message);
  }).catch((error: unknown) => {
    // Exit code 1: keys found.
    if (!(error instanceof ExitCode && error.code === 1)) throw error;
  });
  return out.length;
}

export interface ScanFigures {
  megabytes: number;
  files: number;
  planted: number;
  found: number;
  scanMBps: number;
  readMBps: number;
}

/** Best of `runs` (the page cache warm after the first), scan and baseline interleaved. */
export async function scanBench(dir: string, megabytes: number, runs = 3): Promise<ScanFigures> {
  await rm(dir, { recursive: true, force: true });
  const files = 400;
  const tree = await generateTree(dir, megabytes, files, 100);
  const mb = tree.bytes / 1024 / 1024;
  let scanMs = Infinity;
  let readMs = Infinity;
  let found = 0;
  try {
    for (let i = 0; i < runs; i++) {
      let t = performance.now();
      await readAll(dir);
      readMs = Math.min(readMs, performance.now() - t);
      t = performance.now();
      found = await scanTree(dir);
      scanMs = Math.min(scanMs, performance.now() - t);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return { megabytes: Math.round(mb), files, planted: tree.keys.length, found, scanMBps: Math.round(mb / (scanMs / 1000)), readMBps: Math.round(mb / (readMs / 1000)) };
}
