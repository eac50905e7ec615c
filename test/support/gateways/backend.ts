// The upstream behind every gateway in tests: answers 200 with the consumer id the
// gateway passed on (X-Consumer), so tests see that each key maps to its consumer.
import { createServer, type Server } from 'node:http';

export const CONSUMER_HEADER = 'X-Consumer';

export interface Backend {
  port: number;
  close(): Promise<void>;
}

export async function startBackend(): Promise<Backend> {
  const server: Server = createServer((request, response) => {
    const consumer = request.headers[CONSUMER_HEADER.toLowerCase()];
    response.writeHead(200, { 'content-type': 'text/plain' });
    response.end(`consumer=${typeof consumer === 'string' ? consumer : ''}`);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
