/**
 * Secret Manager resource names. Exported for rekey's event intake: a SECRET_ROTATE Pub/Sub
 * notification names its secret in the `secretId` attribute as `projects/<number>/secrets/<id>`,
 * and this maps it back to the managed secret whose binding names that secret.
 */

/** `projects/<project>/secrets/<id>`. */
export function secretResourceName(project: string, secretId: string): string {
  return `projects/${project}/secrets/${secretId}`;
}

export interface SecretResourceName {
  /** Project id or number, as written in the name. */
  project: string;
  /** Set for regional secrets (`projects/P/locations/L/secrets/S`). */
  location: string | undefined;
  secretId: string;
  /** Set when the name is a version's (`.../versions/<n or alias>`). */
  version: string | undefined;
}

const NAME = /^projects\/([^/]+)(?:\/locations\/([^/]+))?\/secrets\/([^/]+)(?:\/versions\/([^/]+))?$/;

/** Parses a secret or secret version resource name; undefined when `name` is not one. */
export function parseSecretResourceName(name: string): SecretResourceName | undefined {
  const match = NAME.exec(name);
  if (!match) return undefined;
  return { project: match[1]!, location: match[2], secretId: match[3]!, version: match[4] };
}

/** The Google secret id a binding names; per-client keys get one secret per client (ids allow no '/'). */
export function secretIdFor(bindingName: string, client: string | undefined): string {
  return client ? `${bindingName}-${client}` : bindingName;
}

/**
 * Whether a resource name (from a notification or an API response) designates the secret that a
 * binding of a provider with this config names. The project may appear as its id or its number.
 */
export function referencesSecret(
  resourceName: string,
  config: { project: string; projectNumber?: string | undefined },
  bindingName: string,
): boolean {
  const parsed = parseSecretResourceName(resourceName);
  if (!parsed || parsed.location !== undefined || parsed.secretId !== bindingName) return false;
  return parsed.project === config.project || parsed.project === config.projectNumber;
}

/** The version number at the end of a version's resource name, or undefined. */
export function versionNumberOf(name: string | null | undefined): number | undefined {
  const version = parseSecretResourceName(name ?? '')?.version;
  return version !== undefined && /^[1-9]\d*$/.test(version) ? Number(version) : undefined;
}
