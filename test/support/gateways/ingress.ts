// An ingress in front of `rekey server`: nginx as a reverse proxy that appends the client's
// address to X-Forwarded-For ($proxy_add_x_forwarded_for, what ingress-nginx does with
// compute-full-forwarded-for), so whatever a client wrote in that header survives in front
// of the address the ingress saw. Only the last hop is the ingress's word.
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { nginxPreamble } from './nginx.js';
import { freePort, launchOnFreePorts, start, tempDir, waitForPort } from './process.js';

export interface Ingress {
  url: string;
  stop(): Promise<void>;
}

export async function startIngress(upstream: string): Promise<Ingress> {
  const dir = await tempDir('ingress');
  // Workers run as an unprivileged user when nginx starts as root: let them reach their temp paths.
  await chmod(dir.path, 0o711);
  const config = join(dir.path, 'nginx.conf');
  const target = new URL(upstream);
  let port = 0;
  const supervised = await launchOnFreePorts(
    dir,
    async () => {
      port = await freePort();
      await writeFile(
        config,
        `${nginxPreamble(dir.path, join(dir.path, 'nginx.pid'), 1)}
  client_max_body_size 2m;
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_pass http://${target.host};
    }
  }
}
`,
      );
    },
    () => start('nginx', ['-p', dir.path, '-c', config, '-g', 'daemon off;']),
    (proc) => waitForPort(port, proc),
  );
  return { url: `http://127.0.0.1:${port}/`, stop: supervised.stop };
}
