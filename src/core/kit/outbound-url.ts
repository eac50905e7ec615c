/**
 * URLs a provider sends credentials or values to (webhook deliveries, an http issuer's calls).
 * https, or plain http only where the config says `insecure: true`; and never a link-local or
 * cloud metadata address, whatever the config says: a request there would reach the instance's
 * own credentials (AWS IMDS, GCE and Azure metadata) with rekey's network identity.
 *
 * URLs are parsed by the WHATWG parser first, so other spellings of an address (decimal or
 * hexadecimal IPv4, IPv4-mapped IPv6) are caught in their canonical form. A DNS name that
 * resolves to such an address is not: keep egress to metadata addresses closed in the network
 * as well (the Helm chart's egress example does).
 */
import { z } from 'zod';

const METADATA_HOSTS = new Set(['metadata', 'metadata.google.internal', 'metadata.goog', 'instance-data', 'instance-data.ec2.internal']);

/** `insecure: true` lets a provider use plain http (a test peer, a sidecar on loopback). */
export const insecureFlag = z
  .boolean()
  .default(false)
  .describe('Allow plain http URLs (credentials and values then travel unencrypted); never for link-local or metadata addresses');

/** Why rekey must not send a request to `url`, or undefined when it may. */
export function outboundUrlProblem(url: URL, insecure: boolean): string | undefined {
  if (url.protocol !== 'https:' && !(insecure && url.protocol === 'http:')) return 'must be https (http only with insecure: true)';
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase().replace(/\.$/, '');
  if (METADATA_HOSTS.has(host) || isLinkLocalOrMetadata(host)) return 'must not point at a link-local or cloud metadata address';
  return undefined;
}

/** IPv4 169.254.0.0/16 (IMDS 169.254.169.254, ECS 169.254.170.2), Alibaba's 100.100.100.200, IPv6 fe80::/10, AWS's fd00:ec2::254, and those mapped into IPv6. */
function isLinkLocalOrMetadata(host: string): boolean {
  const mapped = /^::ffff:(.+)$/.exec(host)?.[1];
  const v4 = mapped !== undefined ? mappedToDotted(mapped) : host;
  if (v4 !== undefined && /^169\.254\.\d+\.\d+$/.test(v4)) return true;
  if (v4 === '100.100.100.200') return true;
  if (/^fe[89ab][0-9a-f]:/.test(host)) return true;
  return host === 'fd00:ec2::254';
}

/** `::ffff:a9fe:a9fe` (how the URL parser writes a mapped address) as dotted IPv4. */
function mappedToDotted(text: string): string | undefined {
  if (/^\d+\.\d+\.\d+\.\d+$/.test(text)) return text;
  const match = /^([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(text);
  if (!match) return undefined;
  const [high, low] = [parseInt(match[1]!, 16), parseInt(match[2]!, 16)];
  return [high >> 8, high & 255, low >> 8, low & 255].join('.');
}

/** Adds an issue at `path` when `text` is not a URL rekey may send to. */
export function checkOutboundUrl(text: string | undefined, insecure: boolean, path: Array<string | number>, ctx: z.RefinementCtx): void {
  if (text === undefined) return;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return; // not absolute: the field's own schema (or its base URL) says what is wrong
  }
  const problem = outboundUrlProblem(url, insecure);
  if (problem) ctx.addIssue({ code: 'custom', path, message: problem });
}
