// Caddy 2.6 from Debian, `caddy run` with a generated JSON config. rekey's part is one
// `map` handler (its @id) turning the key header into {rekey_consumer}; the routes
// around it (a health check, the 401, the reverse proxy) belong to "the operator" and
// must survive every change rekey makes.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CONSUMER_HEADER } from './backend.js';
import type { Gateway } from './gateway.js';
import { freePort, launchOnFreePorts, start, tempDir, waitForPort } from './process.js';

export interface CaddyGateway extends Gateway {
  /** The admin API, e.g. http://127.0.0.1:PORT */
  admin: string;
  /** The @id of the map handler rekey owns. */
  handler: string;
}

export const CADDY_HANDLER_ID = 'rekey_api_keys';

/**
 * `unixAdmin`: the admin API on a unix socket in the temp dir instead of a loopback port.
 * `persist`: Caddy autosaves every admin API change and a restart resumes from it (`caddy run
 * --resume`, as Debian's unit does on reload); without it, a restart loads the config file
 * again and loses every key rekey deployed (the admin-API-only case).
 */
export async function startCaddy(backendPort: number, o: { header?: string; unixAdmin?: boolean; persist?: boolean } = {}): Promise<CaddyGateway> {
  const header = o.header ?? 'X-Api-Key';
  const dir = await tempDir('caddy');
  const config = join(dir.path, 'caddy.json');
  const socket = join(dir.path, 'admin.sock');
  // Caddy keeps its state under $HOME / XDG dirs: keep them inside the temp dir.
  const env = { ...process.env, HOME: dir.path, XDG_CONFIG_HOME: join(dir.path, 'config'), XDG_DATA_HOME: join(dir.path, 'data') };
  let port = 0;
  let adminPort = 0;
  const supervised = await launchOnFreePorts(
    dir,
    async () => {
      port = await freePort();
      adminPort = await freePort();
      await writeFile(config, JSON.stringify(render({ port, admin: o.unixAdmin ? { listen: `unix/${socket}`, origins: ['localhost'] } : { listen: `127.0.0.1:${adminPort}` }, header, backendPort, persist: o.persist ?? false }), null, 2));
    },
    () => start('caddy', ['run', '--config', config, ...(o.persist ? ['--resume'] : [])], { env }),
    async (proc) => {
      await waitForPort(port, proc);
      if (!o.unixAdmin) await waitForPort(adminPort, proc);
    },
  );
  const admin = o.unixAdmin ? `unix:${socket}` : `http://127.0.0.1:${adminPort}`;
  return {
    name: 'caddy',
    url: `http://127.0.0.1:${port}/`,
    header,
    dir: dir.path,
    admin,
    handler: CADDY_HANDLER_ID,
    providerConfig: { admin, handler: CADDY_HANDLER_ID, probe: { url: `http://127.0.0.1:${port}/`, header } },
    restart: supervised.restart,
    stop: supervised.stop,
  };
}

function render(o: { port: number; admin: Record<string, unknown>; header: string; backendPort: number; persist: boolean }) {
  return {
    admin: { ...o.admin, config: { persist: o.persist } },
    apps: {
      http: {
        servers: {
          api: {
            listen: [`127.0.0.1:${o.port}`],
            automatic_https: { disable: true },
            routes: [
              { match: [{ path: ['/healthz'] }], handle: [{ handler: 'static_response', status_code: 200, body: 'ok' }], terminal: true },
              {
                handle: [
                  {
                    handler: 'map',
                    '@id': CADDY_HANDLER_ID,
                    source: `{http.request.header.${o.header}}`,
                    destinations: ['{rekey_consumer}'],
                    mappings: [],
                    defaults: [''],
                  },
                ],
              },
              { match: [{ vars: { '{rekey_consumer}': [''] } }], handle: [{ handler: 'static_response', status_code: 401 }], terminal: true },
              {
                handle: [
                  {
                    handler: 'reverse_proxy',
                    upstreams: [{ dial: `127.0.0.1:${o.backendPort}` }],
                    headers: { request: { set: { [CONSUMER_HEADER]: ['{rekey_consumer}'] } } },
                  },
                ],
              },
            ],
          },
        },
      },
    },
  };
}
