/**
 * In-process ordering of work on one resource: serialized() runs tasks one after the
 * other per key; coalesced() lets a burst of callers share one run; sharedRead() lets
 * concurrent readers share one read.
 */
const queues = new Map<string, Promise<unknown>>();

/**
 * Runs `task` after every earlier task queued under the same key has settled, so two
 * targets of one process never interleave read-modify-write cycles on one file.
 * Processes are not coordinated: see the providers' READMEs.
 */
export async function serialized<T>(key: string, task: () => Promise<T>): Promise<T> {
  const before = queues.get(key) ?? Promise.resolve();
  const run = before.then(task, task);
  const settled = run.then(
    () => undefined,
    () => undefined,
  );
  queues.set(key, settled);
  try {
    return await run;
  } finally {
    if (queues.get(key) === settled) queues.delete(key);
  }
}

const waitingRuns = new Map<string, Promise<unknown>>();

/**
 * Runs `task` so that it starts after this call, one run at a time per key; callers that
 * arrive while a run is waiting to start share it. For "bring the file up to date" work:
 * ten changes in a burst cost one or two rewrites, and each caller still returns only
 * after a rewrite that began after its own change. Every caller of a key must pass an
 * equivalent task: only the first one's runs.
 */
export function coalesced<T>(key: string, task: () => Promise<T>): Promise<T> {
  const waiting = waitingRuns.get(key) as Promise<T> | undefined;
  if (waiting) return waiting;
  const run = serialized(`coalesced:${key}`, () => {
    waitingRuns.delete(key);
    return task();
  });
  waitingRuns.set(key, run);
  return run;
}

const reads = new Map<unknown, Promise<unknown>>();

/**
 * Single-flight reads: a caller that asks while a read under the same key is in flight gets
 * that read's result instead of starting another. For Target.inspect(): the drift check
 * inspects every secret bound to a target at once, and bindings that read one map, config or
 * listing then cost the target one read. Put everything derived from the answer (the
 * fingerprints) inside `read`, so it is computed once too. The first caller's signal governs
 * the shared read. `key` names the resource: a string, or the client object that reads it.
 */
export function sharedRead<T>(key: unknown, read: () => Promise<T>): Promise<T> {
  const running = reads.get(key) as Promise<T> | undefined;
  if (running) return running;
  const started = read().finally(() => reads.delete(key));
  reads.set(key, started);
  return started;
}
