#!/usr/bin/env node
// Runs the Prisma CLI offline. Prisma 6.19 generates the client and diffs schemas in
// WebAssembly; these variables stop it from downloading native engines it would not use.
//   node scripts/prisma.mjs generate   -> src/db/generated
//   node scripts/prisma.mjs diff NAME  -> prisma/migrations/<timestamp>_NAME/migration.sql
// The diff is from the committed schema (git HEAD:prisma/schema.prisma, which the newest
// migration was written for) to the working one: with a driver adapter configured, Prisma
// refuses to read a database or a shadow database for a diff, but compares datamodels.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = {
  ...process.env,
  PRISMA_QUERY_ENGINE_LIBRARY: process.execPath,
  PRISMA_SCHEMA_ENGINE_BINARY: process.execPath,
  PRISMA_HIDE_UPDATE_MESSAGE: '1',
  CHECKPOINT_DISABLE: '1',
};
const require = createRequire(import.meta.url);
let cli;
try {
  cli = require.resolve('prisma/build/index.js');
} catch {
  // Production installs omit the Prisma CLI; the generated client ships in dist/.
  process.exit(0);
}
const prisma = (args, options = {}) => execFileSync(process.execPath, [cli, ...args], { env, ...options });

const [command, name] = process.argv.slice(2);
if (command === 'generate') {
  prisma(['generate'], { stdio: ['ignore', 'ignore', 'inherit'] });
} else if (command === 'diff') {
  if (!name || !/^[a-z0-9_]+$/.test(name)) throw new Error('usage: npm run db:diff -- <snake_case_name>');
  const dir = 'prisma/migrations';
  const scratch = mkdtempSync(join(tmpdir(), 'rekey-diff-'));
  let sql;
  try {
    const committed = join(scratch, 'schema.prisma');
    writeFileSync(committed, execFileSync('git', ['show', 'HEAD:prisma/schema.prisma']));
    sql = prisma(['migrate', 'diff', '--from-schema-datamodel', committed, '--to-schema-datamodel', 'prisma/schema.prisma', '--script'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    }).toString();
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  if (sql.includes('This is an empty migration')) {
    console.log('prisma/schema.prisma has no change from the committed one: no migration written');
    process.exit(0);
  }
  const body = sql.slice(sql.indexOf('--'));
  const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
  mkdirSync(`${dir}/${stamp}_${name}`, { recursive: true });
  writeFileSync(`${dir}/${stamp}_${name}/migration.sql`, body);
  console.log(`wrote ${dir}/${stamp}_${name}/migration.sql; add anything Prisma cannot express by hand`);
} else {
  throw new Error('usage: node scripts/prisma.mjs generate|diff NAME');
}
