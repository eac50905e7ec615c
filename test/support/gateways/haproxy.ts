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
  /**
   * Track accepted keys in the stick tables of providers/haproxy/README.md "Usage" (`keys`,
   * `sources`, sources by /24) and refuse throttled keys (`throttled:<consumer>`) with 429 over
   * `throttledPer10s` requests in 10 s. @defaultValue off
   */
  usage?: { throttledPer10s: number };
  /** `nbthread`: 1 makes every Runtime API command run on one thread, so a freed map entry's address goes to the next adds (HAProxy's per-thread cache). @defaultValue HAProxy's (one per core) */
  threads?: number;
}

export async function startHaproxy(backendPort: number, { header = 'X-Api-Key', statsMaxconn, usage, threads }: HaproxyOptions = {}): Promise<HaproxyGateway> {
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
      await writeFile(config, render({ port, runtimePort, socket, map, header, backendPort, statsMaxconn, usage, threads }));
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
    providerConfig: {
      runtimeApi: `unix:${socket}`,
      map,
      probe: { url: `http://127.0.0.1:${port}/`, header },
      ...(usage ? { stickTables: { keys: 'st_keys', sources: 'st_key_sources' } } : {}),
    },
    restart: supervised.restart,
    stop: supervised.stop,
  };
}

function render(o: { port: number; runtimePort: number; socket: string; map: string; header: string; backendPort: number; statsMaxconn: number | undefined; usage: HaproxyOptions['usage']; threads: number | undefined }): string {
  const tables = o.usage
    ? `
backend st_keys
  stick-table type string len 128 size 100k expire 1h store http_req_cnt,http_err_cnt,http_req_rate(10s)

backend st_key_sources
  stick-table type string len 160 size 1m expire 10m store http_req_cnt
`
    : '';
  const track = o.usage
    ? `
  http-request track-sc0 req.fhdr(${o.header}) table st_keys
  http-request set-var(txn.network) src,ipmask(24)
  http-request track-sc1 req.fhdr(${o.header}),concat(@,txn.network) table st_key_sources
  http-request deny deny_status 429 if { var(txn.consumer) -m beg throttled: } { sc0_http_req_rate(st_keys) gt ${o.usage.throttledPer10s} }`
    : '';
  return `global${o.statsMaxconn ? `\n  stats maxconn ${o.statsMaxconn}` : ''}${o.threads ? `\n  nbthread ${o.threads}` : ''}
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
  http-request deny deny_status 401 unless { var(txn.consumer) -m found }${track}
  http-request set-header ${CONSUMER_HEADER} %[var(txn.consumer)]
  default_backend app

backend app
  server app1 127.0.0.1:${o.backendPort}
${tables}`;
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
