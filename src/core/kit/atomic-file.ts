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

export interface AtomicWriteOptions {
  /**
   * The file's mode, whatever is at `path` now (nothing there is looked at, a link not
   * followed); the file then belongs to this process. @defaultValue an existing file's mode, else 0640
   */
  mode?: number;
}

/**
 * Writes `data` to a temp file beside `path` (a new name, created exclusively: a link there is
 * never written through), fsyncs it, renames it over `path` and fsyncs the directory. Unless
 * `options.mode` is given, an existing file's mode is kept, and its owner and group too
 * when the process may set them (as root); otherwise the new file belongs to this
 * process, so run rekey as the file's owner. On any failure the temp file is removed.
 *
 * Each file system call is a trip to libuv's thread pool (on a mostly idle virtual machine,
 * waking a thread costs a few hundred microseconds), so the calls that do not depend on each
 * other go together: the stat, the temp file's and the directory's opens; the write and the
 * mode; the temp file's close and the rename. The order that makes it atomic and durable is
 * kept: the data is synced before the rename, the directory after it.
 */
export async function writeFileAtomic(path: string, data: string, options: AtomicWriteOptions = {}): Promise<void> {
  const directory = dirname(path);
  const temp = join(directory, `.${basename(path)}.${randomUUID()}.tmp`);
  const [previous, created, folder] = await Promise.allSettled([
    options.mode === undefined
      ? stat(path).catch((error: NodeJS.ErrnoException) => {
          if (error.code === 'ENOENT') return undefined;
          throw error;
        })
      : undefined,
    // Owner-only until its mode is set below.
    open(temp, 'wx', 0o600),
    // Some filesystems refuse to open (or fsync) a directory: then the rename is not synced.
    open(directory, 'r').catch(() => undefined),
  ]);
  const dir = folder.status === 'fulfilled' ? folder.value : undefined;
  try {
    if (created.status === 'rejected') throw created.reason;
    const handle = created.value;
    try {
      try {
        if (previous.status === 'rejected') throw previous.reason;
        const before = previous.value;
        // open() applies the umask: set the mode explicitly.
        firstError(await Promise.allSettled([handle.writeFile(data), handle.chmod(options.mode ?? (before ? before.mode & 0o7777 : DEFAULT_MODE))]));
        if (before && (before.uid !== process.getuid?.() || before.gid !== process.getgid?.())) {
          await chown(temp, before.uid, before.gid).catch((error: NodeJS.ErrnoException) => {
            if (error.code !== 'EPERM') throw error;
          });
        }
        await handle.sync();
      } catch (error) {
        await handle.close();
        throw error;
      }
      // Renaming an open file is fine: its data is synced already.
      firstError(await Promise.allSettled([handle.close(), rename(temp, path)]));
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw error;
    }
    // Makes the rename itself durable.
    await dir?.sync().catch(() => undefined);
  } finally {
    await dir?.close();
  }
}

/** Throws the first rejection's reason, once every call has settled. */
function firstError(results: readonly PromiseSettledResult<unknown>[]): void {
  for (const result of results) if (result.status === 'rejected') throw result.reason;
}

/** Reads a file as UTF-8; undefined when it does not exist. */
export async function readFileIfExists(path: string): Promise<string | undefined> {
  return readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
}
