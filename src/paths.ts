import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The directory holding rekey's package.json, whether running from src/ or dist/. */
export const packageRoot: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'rekey') return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find rekey package.json above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
})();
