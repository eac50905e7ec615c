// HAProxy 2.6 from Debian, run in the foreground (-db) with a generated config: keys in
// a map file, the consumer passed to the backend as X-Consumer, 401 for anything else.
// The Runtime API listens on a unix socket and on a loopback TCP port, both `level operator`,
// with HAProxy's default `stats maxconn` (10) unless the caller raises it.
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CONSUMER_HEADER } from './backend.js';
import type { Gateway } from './gateway.js';
import { freePort, launchOnFreePorts, start, tempDir, waitForPort } from './process.js';

export interface HaproxyGateway extends Gateway {
  /** The map file the config loads (also its name on the Runtime API). */
  map: string;
  runtimeApi: { unix: string; tcp: string };
}

export interface HaproxyOptions {
  header?: string;
  /** `stats maxconn`, for several rekey processes (the provider opens up to 4 each). @defaultValue HAProxy's 10 */
  statsMaxconn?: number;
}

export async function startHaproxy(backendPort: number, { header = 'X-Api-Key', statsMaxconn }: HaproxyOptions = {}): Promise<HaproxyGateway> {
  const dir = await tempDir('haproxy');
  const map = join(dir.path, 'api-keys.map');
  const socket = join(dir.path, 'runtime.sock');
  await writeFile(map, '');
  await chmod(map, 0o640);
  const config = join(dir.path, 'haproxy.cfg');
  let port = 0;
  let runtimePort = 0;
  const supervised = await launchOnFreePorts(
    dir,
    async () => {
      port = await freePort();
      runtimePort = await freePort();
      await writeFile(config, render({ port, runtimePort, socket, map, header, backendPort, statsMaxconn }));
    },
    () => start('haproxy', ['-db', '-f', config]),
    async (proc) => {
      await waitForPort(port, proc);
      await waitForPort(runtimePort, proc);
    },
  );
  return {
    name: 'haproxy',
    url: `http://127.0.0.1:${port}/`,
    header,
    dir: dir.path,
    map,
    runtimeApi: { unix: `unix:${socket}`, tcp: `tcp://127.0.0.1:${runtimePort}` },
    providerConfig: { runtimeApi: `unix:${socket}`, map, probe: { url: `http://127.0.0.1:${port}/`, header } },
    restart: supervised.restart,
    stop: supervised.stop,
  };
}

function render(o: { port: number; runtimePort: number; socket: string; map: string; header: string; backendPort: number; statsMaxconn: number | undefined }): string {
  return `global${o.statsMaxconn ? `\n  stats maxconn ${o.statsMaxconn}` : ''}
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
