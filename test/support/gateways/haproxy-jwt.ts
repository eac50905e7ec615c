// HAProxy 2.6 from Debian as an API gateway that verifies bearer JWTs itself (jwt_verify),
// configured as the demo's (src/cli/demo-gateway.ts): 200 "ok" when every check passes, 401 otherwise.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { haproxyJwtConfig } from '../../../src/cli/demo-gateway.js';
import { freePort, launchOnFreePorts, start, tempDir, waitForPort, type Supervised } from './process.js';

export interface JwtGateway extends Supervised {
  url: string;
  /** The PEM file jwt_verify reads (at start: restart() after changing it). */
  keyFile: string;
}

export async function startJwtHaproxy(publicKeyPem: string, audience: string): Promise<JwtGateway> {
  const dir = await tempDir('haproxy-jwt');
  const keyFile = join(dir.path, 'signing.pem');
  const config = join(dir.path, 'haproxy.cfg');
  await writeFile(keyFile, publicKeyPem);
  let port = 0;
  const supervised = await launchOnFreePorts(
    dir,
    async () => {
      port = await freePort();
      await writeFile(config, haproxyJwtConfig({ port, keyFile, audience }));
    },
    () => start('haproxy', ['-db', '-f', config]),
    (proc) => waitForPort(port, proc),
  );
  return { ...supervised, url: `http://127.0.0.1:${port}/`, keyFile };
}
