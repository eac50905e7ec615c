// HAProxy 2.6 from Debian, run in the foreground (-db) with a generated config: keys in
// a map file, the consumer passed to the backend as X-Consumer, 401 for anything else.
// The Runtime API listens on a unix socket and on a loopback TCP port, both `level operator`.
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CONSUMER_HEADER } from './backend.js';
import type { Gateway } from './gateway.js';
import { freePort, launchOnFreePorts, start, tempDir, waitForPort, type Spawned } from './process.js';

export interface HaproxyGateway extends Gateway {
  /** The map file the config loads (also its name on the Runtime API). */
  map: string;
  runtimeApi: { unix: string; tcp: string };
}

export async function startHaproxy(backendPort: number, header = 'X-Api-Key'): Promise<HaproxyGateway> {
  const dir = await tempDir('haproxy');
  const map = join(dir.path, 'api-keys.map');
  const socket = join(dir.path, 'runtime.sock');
  await writeFile(map, '');
  await chmod(map, 0o640);
  const config = join(dir.path, 'haproxy.cfg');
  let proc: Spawned | undefined;
  let port = 0;
  let runtimePort = 0;

  const launch = async () => {
    proc = start('haproxy', ['-db', '-f', config]);
    await waitForPort(port, proc);
    await waitForPort(runtimePort, proc);
  };
  await launchOnFreePorts(
    dir,
    async () => {
      port = await freePort();
      runtimePort = await freePort();
      await writeFile(config, render({ port, runtimePort, socket, map, header, backendPort }));
      await launch();
    },
    async () => proc?.stop(),
  );
  return {
    name: 'haproxy',
    url: `http://127.0.0.1:${port}/`,
    header,
    dir: dir.path,
    map,
    runtimeApi: { unix: `unix:${socket}`, tcp: `tcp://127.0.0.1:${runtimePort}` },
    providerConfig: { runtimeApi: `unix:${socket}`, map, probe: { url: `http://127.0.0.1:${port}/`, header } },
    async restart() {
      await proc?.stop();
      await launch();
    },
    async stop() {
      await proc?.stop();
      await dir.remove();
    },
  };
}

function render(o: { port: number; runtimePort: number; socket: string; map: string; header: string; backendPort: number }): string {
  return `global
  stats socket ${o.socket} mode 600 level operator
  stats socket ipv4@127.0.0.1:${o.runtimePort} level operator

defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 30s

frontend api
  bind 127.0.0.1:${o.port}
  http-request set-var(txn.consumer) req.fhdr(${o.header}),map(${o.map})
  http-request deny deny_status 401 unless { var(txn.consumer) -m found }
  http-request set-header ${CONSUMER_HEADER} %[var(txn.consumer)]
  default_backend app

backend app
  server app1 127.0.0.1:${o.backendPort}
`;
}

/** The `providers:` entry (YAML, indented for a providers: map) pointing a haproxy target at this gateway. */
export function haproxyProviderYaml(gateway: HaproxyGateway, name = 'edge'): string {
  const probe = gateway.providerConfig.probe as { url: string; header: string };
  return [
    `  ${name}:`,
    '    type: haproxy',
    `    runtimeApi: ${gateway.runtimeApi.unix}`,
    `    map: ${gateway.map}`,
    `    probe: { url: "${probe.url}", header: ${probe.header} }`,
  ].join('\n');
}
