/**
 * Secret references as AWS events carry them (EventBridge / CloudTrail `secretId`, rotation
 * events): a name, a full ARN (name plus a 6-character random suffix) or a partial ARN. Exported
 * so rekey's event intake can map an event to the managed secret whose binding names it.
 */
const ARN = /^arn:(aws[a-z-]*):secretsmanager:([a-z0-9-]+):(\d{12}):secret:(.+)$/;

export interface SecretArn {
  partition: string;
  region: string;
  account: string;
  /** The secret's name, without the random suffix when the ARN is complete. */
  name: string;
}

/** Parses a Secrets Manager secret ARN; undefined when `text` is not one. */
export function parseSecretArn(text: string): SecretArn | undefined {
  const match = ARN.exec(text);
  if (!match) return undefined;
  const [, partition, region, account, resource] = match as unknown as [string, string, string, string, string];
  // A complete ARN ends in "-" and 6 random characters that are not part of the name.
  const name = /-[A-Za-z0-9]{6}$/.test(resource) ? resource.slice(0, -7) : resource;
  return { partition, region, account, name };
}

/**
 * Whether an event's secret reference (name or ARN) designates the secret a binding names (name or
 * ARN). Names are compared after removing the ARN parts; region and account are compared too when
 * both sides are ARNs.
 */
export function referencesSecret(reference: string, bindingName: string): boolean {
  if (reference === bindingName) return true;
  const a = parseSecretArn(reference);
  const b = parseSecretArn(bindingName);
  if (a && b) return a.name === b.name && a.region === b.region && a.account === b.account;
  return (a?.name ?? reference) === (b?.name ?? bindingName);
}
