/**
 * What the gateways that look keys up in a map (HAProxy, Caddy, nginx) can hold. A key is
 * URL-safe characters (base62, base64, UUIDs fit): HAProxy's Runtime API splits commands on
 * spaces and `;` and a map file line starting with `#` is a comment; nginx turns keys into
 * anchored regular expressions; Caddy and nginx read an input starting with `~` as one.
 * A consumer id is the map's value, logged and passed on in a header or a placeholder: one
 * word, no `$`, quotes, braces or spaces, and never empty (empty means "no key").
 */
import { ProviderError } from '../errors.js';
import type { VersionRef } from '../ports.js';
import type { SecretValue } from '../secret-value.js';

const KEY = /^[A-Za-z0-9_.+/=-][A-Za-z0-9_.~+/=-]{0,1023}$/;
const CONSUMER = /^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,255}$/;

/**
 * @throws ProviderError REKEY_ERR_INVALID (not retryable, never quoting the key) when the
 * `gateway`'s map cannot hold this version's key or consumer id.
 */
export function checkMapEntry(version: VersionRef, value: SecretValue, gateway: string, provider: string): void {
  if (!KEY.test(value.reveal())) {
    throw new ProviderError('REKEY_ERR_INVALID', `version ${version.number} of ${version.secret} holds characters a ${gateway} map key cannot (allowed: A-Z a-z 0-9 _ . ~ + / = -, no leading ~)`, { provider });
  }
  if (!CONSUMER.test(version.consumer)) {
    throw new ProviderError('REKEY_ERR_INVALID', `consumer id of ${version.secret} must be one word of A-Z a-z 0-9 . _ : @ / -`, { provider });
  }
}
