/**
 * A TCP proxy in front of HAProxy's Runtime API, so the soak can break the gateway's
 * control plane while HAProxy keeps serving traffic: `refuse` stops listening (clients
 * get ECONNREFUSED), `delay` holds every new connection for a while before passing it on
 * (provider calls run past their timeouts), `pass` forwards at once.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export type ProxyMode = { kind: 'pass' } | { kind: 'refuse' } | { kind: 'delay'; ms: number };

export class RuntimeApiProxy {
  private server: Server | undefined;
  private mode: ProxyMode = { kind: 'pass' };
  private readonly sockets = new Set<Socket>();
  connections = 0;

  private constructor(
    readonly port: number,
    private readonly upstreamPort: number,
  ) {}

  static async start(port: number, upstreamPort: number): Promise<RuntimeApiProxy> {
    const proxy = new RuntimeApiProxy(port, upstreamPort);
    await proxy.listen();
    return proxy;
  }

  get url(): string {
    return `tcp://127.0.0.1:${this.port}`;
  }

  async set(mode: ProxyMode): Promise<void> {
    this.mode = mode;
    if (mode.kind === 'refuse') await this.close();
    else if (!this.server) await this.listen();
  }

  async stop(): Promise<void> {
    await this.close();
    for (const socket of this.sockets) socket.destroy();
  }

  private listen(): Promise<void> {
    // Half-open: a Runtime API client half-closes after its command and then reads the answer.
    const server = createServer({ allowHalfOpen: true }, (client) => this.handle(client));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
  }

  private close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return Promise.resolve();
    return new Promise((resolve) => server.close(() => resolve()));
  }

  private handle(client: Socket): void {
    this.connections += 1;
    this.sockets.add(client);
    client.once('close', () => this.sockets.delete(client));
    client.on('error', () => undefined);
    // Buffer what the client sends while we wait (a Runtime API client writes its command at once).
    client.pause();
    const forward = () => {
      if (client.destroyed) return;
      const upstream = connect({ port: this.upstreamPort, host: '127.0.0.1', allowHalfOpen: true });
      this.sockets.add(upstream);
      upstream.once('close', () => this.sockets.delete(upstream));
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    };
    const mode = this.mode;
    if (mode.kind === 'delay') setTimeout(forward, mode.ms);
    else forward();
  }
}
