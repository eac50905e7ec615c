/**
 * The dashboard's files, as `npm run build:ui` writes them to dist/ui (scripts/build-ui.mjs):
 * index.html and, under assets/, the stylesheet and the ES modules compiled from
 * src/dashboard/client. They are read once at start-up and served from memory; a path that is
 * not one of them is not served, so nothing else on disk can be reached through /ui.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { packageRoot } from '../paths.js';

/** Where the build puts the dashboard. */
export const UI_DIR = join(packageRoot, 'dist', 'ui');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

export interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/** Every servable file under `dir` by its path relative to it (`assets/main.js`); empty when the UI is not built. */
export function loadAssets(dir = UI_DIR): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  if (!existsSync(join(dir, 'index.html'))) return assets;
  const walk = (folder: string): void => {
    for (const name of readdirSync(folder)) {
      const path = join(folder, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (TYPES[extname(name)]) {
        const body = readFileSync(path);
        assets.set(relative(dir, path).split(sep).join('/'), { body, type: TYPES[extname(name)]!, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
      }
    }
  };
  walk(dir);
  return assets;
}

/**
 * The Content-Security-Policy of every dashboard response: scripts, styles and requests from
 * this origin only, no inline script or style, no framing, no form posted anywhere, and
 * Trusted Types required for DOM sinks (the client builds its DOM with textContent only).
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  'trusted-types',
].join('; ');

/**
 * HSTS, for a dashboard served over https (a Secure session cookie, the default: browsers keep
 * such a cookie from no other plain-HTTP address than localhost, and ignore HSTS over plain
 * HTTP): a year in which the browser goes to this host over https only, so nobody on the path can
 * strip TLS from the next visit. No includeSubDomains: the other hosts of the domain are not rekey's.
 */
export const STRICT_TRANSPORT_SECURITY = 'max-age=31536000';

/** Headers of every response under /ui (and STRICT_TRANSPORT_SECURITY with a Secure cookie). */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};
