// Propagation latency of the real-gateway targets (HAProxy, Caddy, nginx from Debian):
// for each gateway, the time from deploy() being called to the first request with the
// new key the gateway accepts, and from retire() being called to the first request with
// the old key it rejects. p50/p99 over N iterations; one JSON line at the end.
//
//   npx tsx bench/propagation.ts [--iterations 50] [--gateways haproxy,caddy,nginx]
//   npm run bench -- propagation
import { randomUUID } from 'node:crypto';
import { Agent } from 'node:http';
import { performance } from 'node:perf_hooks';
import { caddy } from '../providers/caddy/index.js';
import { haproxy } from '../providers/haproxy/index.js';
import { nginx } from '../providers/nginx/index.js';
import type { AnyProviderModule } from '../src/core/provider.js';
import type { Target, VersionRef } from '../src/core/ports.js';
import { SecretValue } from '../src/core/secret-value.js';
import { call, fingerprint } from '../test/conformance/refs.js';
import { send, startBackend, startCaddy, startHaproxy, startNginx, type Gateway } from '../test/support/gateways/index.js';
import { testProviderContext } from '../test/support/provider-context.js';
import { option, printColumns } from './support/cli.js';
import { percentile } from './support/environment.js';

const GATEWAYS: Record<string, { module: AnyProviderModule; start: (backendPort: number) => Promise<Gateway> }> = {
  haproxy: { module: haproxy, start: (port) => startHaproxy(port) },
  caddy: { module: caddy, start: (port) => startCaddy(port) },
  nginx: { module: nginx, start: (port) => startNginx(port) },
};

interface Summary {
  p50: number;
  p99: number;
  max: number;
}

interface GatewayFigures {
  /** deploy() called -> first accepted request with the new key (ms). */
  deploy: Summary;
  /** retire() called -> first rejected request with the old key (ms). */
  retire: Summary;
  /** How long the deploy() and retire() calls themselves took (ms). */
  deployCall: Summary;
  retireCall: Summary;
}

export async function main(args: string[] = process.argv.slice(2)): Promise<Record<string, GatewayFigures>> {
  const iterations = Number(option(args, '--iterations') ?? 50);
  const names = (option(args, '--gateways') ?? Object.keys(GATEWAYS).join(',')).split(',');
  const results: Record<string, GatewayFigures> = {};
  const backend = await startBackend();
  try {
    for (const name of names) {
      const entry = GATEWAYS[name];
      if (!entry) throw new Error(`unknown gateway ${name} (known: ${Object.keys(GATEWAYS).join(', ')})`);
      const gateway = await entry.start(backend.port);
      try {
        results[name] = await measure(gateway, entry.module, iterations);
      } finally {
        await gateway.stop();
      }
    }
  } finally {
    await backend.close();
  }
  printTable(results, iterations);
  console.log(JSON.stringify({ bench: 'propagation', iterations, unit: 'ms', results }));
  return results;
}

async function measure(gateway: Gateway, module: AnyProviderModule, iterations: number): Promise<GatewayFigures> {
  const config: unknown = module.config.parse(gateway.providerConfig);
  const instance = module.open(config, testProviderContext(`bench-${gateway.name}`));
  const params: unknown = module.bindings.target!.parse(undefined);
  const target: Target = instance.target!({ secret: 'bench', params });
  // A keep-alive client, like a real one: connections survive (or are closed by) reloads.
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  const samples = { deploy: [] as number[], retire: [] as number[], deployCall: [] as number[], retireCall: [] as number[] };
  try {
    for (let i = 0; i < iterations + 1; i++) {
      const value = SecretValue.of(`bench_${randomUUID().replaceAll('-', '')}`);
      const ref: VersionRef = { secret: 'bench', versionId: randomUUID(), number: i + 1, fingerprint: fingerprint(value), consumer: 'bench' };
      const deployed = await timeUntil(gateway, agent, value, (status) => status === 200, () => target.deploy(ref, value, call(30_000)));
      const retired = await timeUntil(gateway, agent, value, (status) => status === 401 || status === 403, () => target.retire(ref, call(30_000)));
      // The first iteration warms connections and caches up: not counted.
      if (i === 0) continue;
      samples.deploy.push(deployed.seen);
      samples.deployCall.push(deployed.call);
      samples.retire.push(retired.seen);
      samples.retireCall.push(retired.call);
    }
  } finally {
    agent.destroy();
  }
  return {
    deploy: summarize(samples.deploy),
    retire: summarize(samples.retire),
    deployCall: summarize(samples.deployCall),
    retireCall: summarize(samples.retireCall),
  };
}

/** Starts `action` and polls back to back with `value` until `done(status)`; times both from the start. */
async function timeUntil(
  gateway: Gateway,
  agent: Agent,
  value: SecretValue,
  done: (status: number) => boolean,
  action: () => Promise<void>,
): Promise<{ seen: number; call: number }> {
  const started = performance.now();
  let callMs = Number.NaN;
  const running = action().then(() => (callMs = performance.now() - started));
  let seen: number;
  for (;;) {
    const status = await send(gateway.url, gateway.header, value.reveal(), agent).then(
      (answer) => answer.status,
      () => 0,
    );
    if (done(status)) {
      seen = performance.now() - started;
      break;
    }
    if (performance.now() - started > 30_000) throw new Error(`${gateway.name}: no change seen within 30s`);
  }
  await running;
  return { seen, call: callMs };
}

function summarize(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const round = (n: number) => Math.round(n * 100) / 100;
  return { p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)), max: round(sorted.at(-1) ?? Number.NaN) };
}

function printTable(results: Record<string, GatewayFigures>, iterations: number): void {
  console.log(`\npropagation through real gateways, ${iterations} iterations each (ms, from the call to the first request that sees the change)\n`);
  const rows = [['gateway', 'change', 'seen p50', 'seen p99', 'seen max', 'call p50', 'call p99']];
  for (const [name, f] of Object.entries(results)) {
    rows.push([name, 'deploy -> accepted', ...[f.deploy.p50, f.deploy.p99, f.deploy.max, f.deployCall.p50, f.deployCall.p99].map(String)]);
    rows.push([name, 'retire -> rejected', ...[f.retire.p50, f.retire.p99, f.retire.max, f.retireCall.p50, f.retireCall.p99].map(String)]);
  }
  printColumns(rows, 2);
  console.log('');
}
