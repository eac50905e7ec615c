/**
 * Atomic file replacement for providers that hand a gateway a file (an HAProxy or
 * nginx map): readers see the old content or the new, never half of it, and a crash
 * leaves one of the two on disk.
 */
import { randomUUID } from 'node:crypto';
import { chown, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** The mode a file gets when it does not exist yet: it usually holds keys. */
const DEFAULT_MODE = 0o640;

/**
 * Writes `data` to a temp file beside `path`, fsyncs it, renames it over `path` and
 * fsyncs the directory. An existing file's mode is kept, and its owner and group too
 * when the process may set them (as root); otherwise the new file belongs to this
 * process, so run rekey as the file's owner.
 */
export async function writeFileAtomic(path: string, data: string): Promise<void> {
  const previous = await stat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  const temp = join(dirname(path), `.${basename(path)}.${randomUUID()}.tmp`);
  const handle = await open(temp, 'wx', previous ? previous.mode & 0o7777 : DEFAULT_MODE);
  try {
    try {
      await handle.writeFile(data);
      // open() applies the umask: set the mode explicitly.
      await handle.chmod(previous ? previous.mode & 0o7777 : DEFAULT_MODE);
      if (previous && (previous.uid !== process.getuid?.() || previous.gid !== process.getgid?.())) {
        await chown(temp, previous.uid, previous.gid).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'EPERM') throw error;
        });
      }
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  await syncDirectory(dirname(path));
}

/** Reads a file as UTF-8; undefined when it does not exist. */
export async function readFileIfExists(path: string): Promise<string | undefined> {
  return readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
}

async function syncDirectory(directory: string): Promise<void> {
  // Makes the rename itself durable; some filesystems refuse fsync on a directory.
  const handle = await open(directory, 'r').catch(() => undefined);
  if (!handle) return;
  try {
    await handle.sync().catch(() => undefined);
  } finally {
    await handle.close();
  }
}
