/**
 * A server-sent-events client for tests: reads a text/event-stream response as it arrives and
 * hands its events out in order, each stamped with the time it was received.
 */
export interface StreamEvent {
  event: string;
  data: unknown;
  /** Date.now() when the event's last line arrived. */
  at: number;
  /** Its `id:` field, if it had one. */
  id?: string;
}

export interface EventStream {
  /** The next event named `event` (earlier events of other names are skipped); rejects after `timeoutMs`. */
  next(event: string, timeoutMs?: number): Promise<StreamEvent & { secrets?: unknown }>;
  /**
   * Every event not yet consumed, once `done` holds for them (for events of separate processes,
   * whose order is not theirs to keep); rejects after `timeoutMs`.
   */
  until(done: (events: readonly StreamEvent[]) => boolean, timeoutMs?: number): Promise<StreamEvent[]>;
  close(): void;
  /** The names of every event received so far, in order (consumed or not). */
  names(): string[];
}

export async function openStream(url: string, credential: string, headers: Record<string, string> = {}): Promise<EventStream> {
  const controller = new AbortController();
  const response = await fetch(url, { headers: { authorization: `Bearer ${credential}`, accept: 'text/event-stream', ...headers }, signal: controller.signal });
  if (response.status !== 200 || !response.body) throw new Error(`stream refused: ${response.status}`);
  const queue: StreamEvent[] = [];
  const names: string[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  void (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let cut: number;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const fields = Object.fromEntries(block.split('\n').filter((l) => !l.startsWith(':') && l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]));
          if (fields.event) {
            names.push(fields.event);
            queue.push({ event: fields.event, data: fields.data ? JSON.parse(fields.data) : undefined, at: Date.now(), ...(fields.id ? { id: fields.id } : {}) });
          }
          wake?.();
        }
      }
    } catch {
      // aborted by close()
    }
    ended = true;
    wake?.();
  })();
  /** Resolves with `take()`'s first answer other than undefined, checked on every event received. */
  const waitFor = async <T>(take: () => T | undefined, what: string, timeoutMs: number): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const taken = take();
      if (taken !== undefined) return taken;
      if (ended) throw new Error(`stream ended, no ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${timeoutMs} ms (received ${names.join(', ')})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  };
  return {
    async next(event, timeoutMs = 30_000) {
      const found = await waitFor(
        () => {
          const index = queue.findIndex((e) => e.event === event);
          return index < 0 ? undefined : queue.splice(0, index + 1).at(-1)!;
        },
        `${event} event`,
        timeoutMs,
      );
      return { ...found, ...(event === 'ready' ? { secrets: (found.data as { secrets: unknown }).secrets } : {}) };
    },
    until: (done, timeoutMs = 30_000) => waitFor(() => (done(queue) ? queue.splice(0) : undefined), 'events awaited', timeoutMs),
    close: () => controller.abort(),
    names: () => [...names],
  };
}
