// HAProxy 2.6 from Debian as an API gateway that verifies bearer JWTs itself (jwt_verify),
// configured as the demo's (src/cli/demo-gateway.ts) with several key files (empty at start),
// run in master-worker mode (-W) with a master CLI, so the haproxy target's `keyFiles` binding
// can publish the keys and reload. 200 "ok" when every check passes, 401 otherwise.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { haproxyJwtConfig } from '../../../src/cli/demo-gateway.js';
import { freePort, launchOnFreePorts, start, tempDir, waitForPort, type Supervised } from './process.js';

export interface JwtGateway extends Supervised {
  url: string;
  /** The PEM files jwt_verify reads, any of which may verify a token (empty at start). */
  keyFiles: string[];
  /** `unix:<path>` of the master CLI (the provider's `masterCli`). */
  masterCli: string;
}

export async function startJwtHaproxy(audience: string, slots = 3): Promise<JwtGateway> {
  const dir = await tempDir('haproxy-jwt');
  const keyFiles = Array.from({ length: slots }, (_, i) => join(dir.path, `signing-${i + 1}.pem`));
  const master = join(dir.path, 'master.sock');
  const config = join(dir.path, 'haproxy.cfg');
  for (const file of keyFiles) await writeFile(file, '');
  let port = 0;
  const supervised = await launchOnFreePorts(
    dir,
    async () => {
      port = await freePort();
      await writeFile(config, haproxyJwtConfig({ port, keyFiles, audience }));
    },
    () => start('haproxy', ['-W', '-db', '-S', `${master},mode,600`, '-f', config]),
    (proc) => waitForPort(port, proc),
  );
  return { ...supervised, url: `http://127.0.0.1:${port}/`, keyFiles, masterCli: `unix:${master}` };
}
