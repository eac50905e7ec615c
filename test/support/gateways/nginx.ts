// nginx 1.22 (Debian's nginx-light) in the foreground (`daemon off`, so the PID we
// spawn is the master), with a generated config that includes rekey's map file and
// passes the consumer to the backend as X-Consumer. Two workers, so reloads really
// replace a worker generation while the other one drains.
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CONSUMER_HEADER } from './backend.js';
import type { Gateway } from './gateway.js';
import { freePort, launchOnFreePorts, start, tempDir, waitForPort } from './process.js';

export interface NginxGateway extends Gateway {
  map: string;
  config: string;
  pidFile: string;
  /** The master's PID. */
  pid(): number;
}

export async function startNginx(backendPort: number, header = 'X-Api-Key'): Promise<NginxGateway> {
  const dir = await tempDir('nginx');
  // Workers run as an unprivileged user when nginx starts as root: let them traverse.
  await chmod(dir.path, 0o711);
  const map = join(dir.path, 'api-keys.map');
  const config = join(dir.path, 'nginx.conf');
  const pidFile = join(dir.path, 'nginx.pid');
  await writeFile(map, '');
  await chmod(map, 0o640);
  let port = 0;
  const supervised = await launchOnFreePorts(
    dir,
    async () => {
      port = await freePort();
      await writeFile(config, render({ port, dir: dir.path, map, pidFile, header, backendPort }));
    },
    () => start('nginx', ['-p', dir.path, '-c', config, '-g', 'daemon off;']),
    (proc) => waitForPort(port, proc),
  );
  return {
    name: 'nginx',
    url: `http://127.0.0.1:${port}/`,
    header,
    dir: dir.path,
    map,
    config,
    pidFile,
    pid: () => supervised.process().pid,
    providerConfig: { map, config, pidFile, prefix: dir.path, probe: { url: `http://127.0.0.1:${port}/`, header } },
    restart: supervised.restart,
    stop: supervised.stop,
  };
}

/** The top of an nginx.conf whose files all live in `dir`, opening its `http {` block. */
export function nginxPreamble(dir: string, pidFile: string, workers: number): string {
  return `worker_processes ${workers};
pid ${pidFile};
error_log ${dir}/error.log warn;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;`;
}

function render(o: { port: number; dir: string; map: string; pidFile: string; header: string; backendPort: number }): string {
  const variable = `$http_${o.header.toLowerCase().replaceAll('-', '_')}`;
  return `${nginxPreamble(o.dir, o.pidFile, 2)}
  keepalive_timeout 30s;
  map ${variable} $rekey_consumer {
    default "";
    include ${o.map};
  }
  server {
    listen 127.0.0.1:${o.port};
    location / {
      if ($rekey_consumer = "") { return 401; }
      proxy_set_header ${CONSUMER_HEADER} $rekey_consumer;
      proxy_pass http://127.0.0.1:${o.backendPort};
    }
  }
}
`;
}
