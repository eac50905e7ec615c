/**
 * A TCP front for the PostgreSQL failover test: what a managed database's endpoint,
 * CloudNativePG's `-rw` Service or HAProxy behind Patroni's REST check is to rekey, one
 * address that the operator (here the test) repoints at the new primary. node-postgres
 * takes one host, so this front is how rekey finds the primary (docs/high-availability.md).
 * Bytes are copied as they are; nothing is parsed.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export class TcpFront {
  private readonly sessions = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private target: number,
  ) {}

  static async listen(target: number): Promise<TcpFront> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const front = new TcpFront(server, (server.address() as { port: number }).port, target);
    server.on('connection', (client) => front.accept(client));
    return front;
  }

  private accept(client: Socket): void {
    const upstream = connect(this.target, '127.0.0.1');
    this.sessions.add(client);
    const close = () => {
      this.sessions.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /**
   * New connections go to `target` from now on. `cut` also ends the open sessions (HAProxy's
   * `on-marked-down shutdown-sessions`); without it they stay with the old server, as they
   * do through a Kubernetes Service whose endpoint changed.
   */
  repoint(target: number, { cut }: { cut: boolean }): void {
    this.target = target;
    if (cut) for (const session of this.sessions) session.destroy();
  }

  async close(): Promise<void> {
    for (const session of this.sessions) session.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
