/**
 * Template files of `rekey agent`: `{{ secret "payments-api-key" }}` and `{{ token "api.example.com" }}`
 * are replaced by the current value and a current token. A rendered file is written 0600 to a
 * temporary file beside it (a new name, created exclusively), synced, and renamed over it, the
 * directory synced after (writeFileAtomic), so a reader never sees half a file and a power loss
 * leaves the old file or the new; a write that fails leaves the old file and no temporary one.
 * It is written only when its content changed, or when what is there is not a regular file
 * private to its owner (made readable to others, a link).
 */
import { constants } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { writeFileAtomic } from '../core/kit/atomic-file.js';

const PLACEHOLDER = /\{\{\s*(secret|token)\s+"([^"]+)"\s*\}\}/g;

export interface Template {
  source: string;
  destination: string;
  text: string;
  /** Secrets and audiences it names (read once, at start). */
  secrets: string[];
  audiences: string[];
}

/** Reads `source:destination`. */
export async function loadTemplate(spec: string): Promise<Template> {
  const cut = spec.lastIndexOf(':');
  if (cut <= 0 || cut === spec.length - 1) throw new Error(`--template takes SOURCE:DESTINATION, not ${spec}`);
  const source = spec.slice(0, cut);
  const text = await readFile(source, 'utf8');
  const names = (kind: string) => [...text.matchAll(PLACEHOLDER)].filter((m) => m[1] === kind).map((m) => m[2]!);
  return { source, destination: spec.slice(cut + 1), text, secrets: names('secret'), audiences: names('token') };
}

/** Renders every template; the number of files whose content changed. */
export async function renderTemplates(templates: Template[], read: { secret: (name: string) => Promise<string>; token: (audience: string) => Promise<string> }): Promise<number> {
  let changed = 0;
  for (const template of templates) {
    const values = new Map<string, string>();
    for (const match of template.text.matchAll(PLACEHOLDER)) {
      const key = `${match[1]} ${match[2]}`;
      if (!values.has(key)) values.set(key, match[1] === 'secret' ? await read.secret(match[2]!) : await read.token(match[2]!));
    }
    const text = template.text.replace(PLACEHOLDER, (_all, kind: string, name: string) => values.get(`${kind} ${name}`)!);
    const current = await present(template.destination);
    if (current?.text === text && current.private) continue;
    // 0600 whatever the umask and whatever was there (a file others could read, a link: not followed).
    await writeFileAtomic(template.destination, text, { mode: 0o600 });
    // The same text made private again (a file others could read, a link) is no change the process must hear of.
    if (current?.text !== text) changed++;
  }
  return changed;
}

/**
 * What is at `path` now: its text, and whether it is a regular file (not a link: not followed)
 * that no other user may read or write; undefined when there is nothing readable there.
 */
async function present(path: string): Promise<{ text: string; private: boolean } | undefined> {
  let file: FileHandle;
  try {
    file = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined; // missing, a link (ELOOP), unreadable: written anew
  }
  try {
    const stats = await file.stat();
    if (!stats.isFile()) return undefined;
    return { text: await file.readFile('utf8'), private: (stats.mode & 0o077) === 0 };
  } finally {
    await file.close();
  }
}
