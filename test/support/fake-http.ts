/** Plumbing the local fakes of HTTP APIs share (the API semantics stay in each fake). */
import type { IncomingMessage, Server } from 'node:http';

/** The whole request body as UTF-8. */
export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Listens on a free loopback port; resolves with it. */
export function listenLoopback(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}
