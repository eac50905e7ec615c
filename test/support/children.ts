/**
 * The rekey processes tests start run a JavaScript build of the sources, made once per test
 * run by the global setup, instead of the TypeScript through tsx. tsx's loader hooks cost a
 * process 1.5 s more at start on a loaded 2-core machine (3.2–3.8 s against 1.6–2.1 s for
 * `rekey status --help`), and the suite starts a hundred of them. The build is esbuild, the
 * transpiler tsx itself uses, file by file with the sources' layout, so a child runs the same
 * code and finds the package root (src/paths.ts) above it as the sources do.
 */
import { build } from 'esbuild';
import { copyFileSync, existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { packageRoot } from '../../src/paths.js';

const ENV = 'REKEY_TEST_BUILD';
/**
 * In the checkout itself, not under node_modules: a worktree whose node_modules is a link to
 * another checkout's would put the build there, and its children would find that checkout's
 * package root (its migrations, its dist/ui) instead of this one's.
 */
const CACHE = join(packageRoot, '.cache');
const PREFIX = 'rekey-test-build-';
/** What children import: the product, its providers (with their test fakes) and the test support. */
const ROOTS = ['src', 'providers', 'test/support'];
/** Browser code (built apart by scripts/build-ui.mjs), and files no child imports. */
const SKIP = (path: string) => path === 'src/dashboard/client' || path.endsWith('.test.ts') || path.endsWith('.d.ts');
/** Files read beside the modules at run time. */
const ASSETS = ['src/config/rekey.schema.json'];

function sources(dir: string, found: string[] = []): string[] {
  for (const name of readdirSync(join(packageRoot, dir))) {
    const path = `${dir}/${name}`;
    if (SKIP(path)) continue;
    if (statSync(join(packageRoot, path)).isDirectory()) sources(path, found);
    else if (path.endsWith('.ts')) found.push(path);
  }
  return found;
}

/** Whether a process with this id is alive. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Builds the children's code (once per test run: a second project's setup finds it made) and
 * returns what removes it. Builds left by test runs that were killed are removed first.
 */
export async function buildChildren(): Promise<() => void> {
  if (process.env[ENV]) return () => {};
  if (existsSync(CACHE)) {
    for (const name of readdirSync(CACHE)) {
      const pid = Number(name.startsWith(PREFIX) ? name.slice(PREFIX.length).split('-')[0] : NaN);
      if (Number.isInteger(pid) && !alive(pid)) rmSync(join(CACHE, name), { recursive: true, force: true });
    }
  }
  const out = join(CACHE, `${PREFIX}${process.pid}-${Date.now()}`);
  const entryPoints = ROOTS.flatMap((root) => sources(root)).map((path) => join(packageRoot, path));
  await build({ entryPoints, outdir: out, outbase: packageRoot, format: 'esm', platform: 'node', target: 'node20', sourcemap: 'linked', tsconfig: join(packageRoot, 'tsconfig.json'), logLevel: 'warning' });
  for (const asset of ASSETS) copyFileSync(join(packageRoot, asset), join(out, asset));
  process.env[ENV] = out;
  return () => {
    rmSync(out, { recursive: true, force: true });
    delete process.env[ENV];
  };
}

/**
 * The node arguments that run `source` (a TypeScript file: absolute, or a path from the package
 * root) from the build. Its stack traces name the build's files, which keep the sources' names;
 * `--enable-source-maps` would map them to the sources, at 0.3–0.5 s more per start.
 */
export function childArgs(source: string): string[] {
  const out = process.env[ENV];
  if (!out) throw new Error(`${ENV} is not set: child processes run the build the integration projects' global setup makes`);
  const compiled = join(out, relative(packageRoot, resolve(packageRoot, source)).replace(/\.ts$/, '.js'));
  if (!existsSync(compiled)) throw new Error(`${source} is not in the children's build (${ROOTS.join(', ')})`);
  return [compiled];
}

/**
 * How to run `source` (as {@link childArgs} takes it) in a child: `module` from the build when a test
 * run made one, else the source itself through tsx (`npm run bench`, which makes no build).
 */
export function childCommand(source: string): { module: string; execArgv: string[] } {
  return process.env[ENV] ? { module: childArgs(source)[0]!, execArgv: [] } : { module: resolve(packageRoot, source), execArgv: ['--import', 'tsx'] };
}
