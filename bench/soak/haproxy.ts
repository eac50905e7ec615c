/**
 * The soak's HAProxy: like test/support/gateways/haproxy.ts, with every secret's keys in
 * one map (as a real API gateway keeps them) and the Runtime API on a loopback TCP port
 * only, with `stats maxconn` raised for 4 rekey processes of 4 connections each (the
 * haproxy provider's README says why).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CONSUMER_HEADER } from '../../test/support/gateways/backend.js';
import { freePort, launchOnFreePorts, start, tempDir, waitForPort, type Spawned } from '../../test/support/gateways/process.js';

export interface SoakHaproxy {
  url: string;
  header: string;
  map: string;
  /** The Runtime API's loopback TCP port (the soak's proxy sits in front of it). */
  runtimePort: number;
  stop(): Promise<void>;
}

export async function startSoakHaproxy(backendPort: number, header = 'X-Api-Key'): Promise<SoakHaproxy> {
  const dir = await tempDir('soak-haproxy');
  const map = join(dir.path, 'keys.map');
  await writeFile(map, '', { mode: 0o640 });
  const config = join(dir.path, 'haproxy.cfg');
  let proc: Spawned | undefined;
  let port = 0;
  let runtimePort = 0;
  await launchOnFreePorts(
    dir,
    async () => {
      port = await freePort();
      runtimePort = await freePort();
      await writeFile(config, render({ port, runtimePort, map, header, backendPort }));
      proc = start('haproxy', ['-db', '-f', config]);
      await waitForPort(port, proc);
      await waitForPort(runtimePort, proc);
    },
    async () => proc?.stop(),
  );
  return {
    url: `http://127.0.0.1:${port}/`,
    header,
    map,
    runtimePort,
    async stop() {
      await proc?.stop();
      await dir.remove();
    },
  };
}

function render(o: { port: number; runtimePort: number; map: string; header: string; backendPort: number }): string {
  return `global
  maxconn 4096
  stats socket ipv4@127.0.0.1:${o.runtimePort} level operator
  stats maxconn 32

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
