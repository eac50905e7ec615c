/**
 * The soak's HAProxy: like test/support/gateways/haproxy.ts, but the keys are spread over
 * several maps (secret i uses map i % maps), each consulted in turn. The haproxy target
 * serializes changes to one map within a process and rewrites the map file after each
 * one; with 200 secrets in a single map, that queue alone pushes calls past a 2 s
 * timeout on a busy machine. Per-secret (or per-shard) maps are what the provider's README
 * recommends, so the soak measures the faults, not that queue.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CONSUMER_HEADER } from '../../test/support/gateways/backend.js';
import { freePort, launchOnFreePorts, start, tempDir, waitForPort, type Spawned } from '../../test/support/gateways/process.js';

export interface SoakHaproxy {
  url: string;
  header: string;
  maps: string[];
  /** The Runtime API's loopback TCP port (the soak's proxy sits in front of it). */
  runtimePort: number;
  stop(): Promise<void>;
}

export async function startSoakHaproxy(backendPort: number, shards: number, header = 'X-Api-Key'): Promise<SoakHaproxy> {
  const dir = await tempDir('soak-haproxy');
  const maps = Array.from({ length: shards }, (_, i) => join(dir.path, `keys-${i}.map`));
  for (const map of maps) await writeFile(map, '', { mode: 0o640 });
  const config = join(dir.path, 'haproxy.cfg');
  let proc: Spawned | undefined;
  let port = 0;
  let runtimePort = 0;
  await launchOnFreePorts(
    dir,
    async () => {
      port = await freePort();
      runtimePort = await freePort();
      await writeFile(config, render({ port, runtimePort, maps, header, backendPort }));
      proc = start('haproxy', ['-db', '-f', config]);
      await waitForPort(port, proc);
      await waitForPort(runtimePort, proc);
    },
    async () => proc?.stop(),
  );
  return {
    url: `http://127.0.0.1:${port}/`,
    header,
    maps,
    runtimePort,
    async stop() {
      await proc?.stop();
      await dir.remove();
    },
  };
}

function render(o: { port: number; runtimePort: number; maps: string[]; header: string; backendPort: number }): string {
  const lookups = o.maps.map((map, i) =>
    i === 0
      ? `  http-request set-var(txn.consumer) req.fhdr(${o.header}),map(${map})`
      : `  http-request set-var(txn.consumer) req.fhdr(${o.header}),map(${map}) unless { var(txn.consumer) -m found }`,
  );
  return `global
  maxconn 4096
  stats socket ipv4@127.0.0.1:${o.runtimePort} level operator

defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 30s

frontend api
  bind 127.0.0.1:${o.port}
${lookups.join('\n')}
  http-request deny deny_status 401 unless { var(txn.consumer) -m found }
  http-request set-header ${CONSUMER_HEADER} %[var(txn.consumer)]
  default_backend app

backend app
  server app1 127.0.0.1:${o.backendPort}
`;
}
