/**
 * The client's change stream parser (src/client/events.ts) with CRLF line ends, which the
 * server-sent-events format allows (a proxy in between may write them), when a chunk of the body
 * ends between the `\r` and the `\n` of a line end: that is one line end, not two. Read as two,
 * the blank line they made split the event from its data, and the change was never seen. The
 * body is handed to the parser in the chunks given (a fetch that answers them), so the split
 * falls where the test puts it.
 */
import { expect, it } from 'vitest';
import { follow, type SecretChange } from '../../src/client/events.js';
import { DEFAULT_RETRY } from '../../src/client/retry.js';

it('reads an event whose CRLF line end is split between two chunks', async () => {
  const chunks = ['retry: 10\r\n\r\nid: 1-0\r\nevent: rotated\r', `\ndata: ${JSON.stringify({ secret: 'k', version: 2 })}\r\n\r\n`];
  let connections = 0;
  let reconnected: (outcome: string) => void = () => {};
  const lost = new Promise<string>((resolve) => (reconnected = resolve));
  const answer = (): Response => {
    if (++connections > 1) reconnected('the event was lost: the stream was opened again without it');
    const encoder = new TextEncoder();
    return new Response(
      new ReadableStream<Uint8Array>({
        start(controller) {
          for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
          controller.close();
        },
      }),
      { status: 200, headers: { 'content-type': 'text/event-stream' } },
    );
  };
  const controller = new AbortController();
  let seen: (change: SecretChange) => void = () => {};
  const change = new Promise<SecretChange>((resolve) => (seen = resolve));
  const following = follow(
    { url: 'http://127.0.0.1:9', credential: () => Promise.resolve('credential'), policy: DEFAULT_RETRY, log: () => {}, fetch: () => Promise.resolve(answer()) },
    seen,
    controller.signal,
  );
  try {
    expect(await Promise.race([change, lost])).toEqual({ type: 'rotated', secret: 'k', version: 2 });
  } finally {
    controller.abort();
    await following;
  }
});
