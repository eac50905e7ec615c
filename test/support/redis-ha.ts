/**
 * Highly available Redis of a test's own, on free loopback ports in a temp directory:
 * - {@link RedisSentinelSet}: a primary, one replica and three sentinels
 *   (`redis-server sentinel.conf --sentinel`, quorum 2, a short `down-after-milliseconds`);
 * - {@link RedisClusterSet}: three primaries (`--cluster-enabled yes`) joined by
 *   `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`; with `replicas: 1`, six
 *   nodes, each primary with a replica (only the tests that fail a primary over start those).
 * Every process is tracked by PID and killed by its owner (and when the test process exits).
 * The machine's shared Redis (6379) is never touched.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, sleep } from './gateways/process.js';
import { RedisServer } from './own-services.js';

const DATA_ARGS = ['--bind', '127.0.0.1', '--protected-mode', 'no', '--save', '', '--maxclients', '2000'];

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await sleep(20);
  }
}

/**
 * Holds `replica` back from its primary: CLIENT PAUSE WRITE (for at most `ms`) stops it applying the
 * replication stream while it stays connected, answering the sentinels or the Cluster bus.
 */
export async function holdBack(replica: RedisServer, ms = 30_000): Promise<void> {
  await replica.command('CLIENT', 'PAUSE', String(ms), 'WRITE');
}

/**
 * Lets a replica that {@link holdBack} held go once its primary is dead, and not before: only when it
 * reports `master_link_status:down` (INFO replication), i.e. it has dropped the link and with it the
 * stream it had not applied. Unpaused while it still saw the link up, it could apply that stream
 * first, and a test that the failover loses those writes would pass without showing anything.
 */
export async function releaseOnceLinkDown(replica: RedisServer, timeoutMs = 30_000): Promise<void> {
  await until(async () => /master_link_status:down/.test(String(await replica.command('INFO', 'replication'))), timeoutMs, `the replica on ${replica.port} losing its primary`);
  await replica.command('CLIENT', 'UNPAUSE');
}

/** A primary, a replica and three sentinels watching them as `mymaster`. */
export class RedisSentinelSet {
  static readonly MASTER = 'mymaster';

  private constructor(
    readonly data: RedisServer[],
    readonly sentinels: RedisServer[],
    /** How long the primary must be silent before the sentinels call it down. */
    readonly downAfterMs: number,
  ) {}

  /** REDIS_URL for rekey: every sentinel and the master set name. */
  get url(): string {
    return `redis+sentinel://${this.sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/${RedisSentinelSet.MASTER}`;
  }

  static async create(dir: string, downAfterMs = 1000): Promise<RedisSentinelSet> {
    const primaryPort = await freePort();
    const primary = new RedisServer(primaryPort, ['--port', String(primaryPort), '--dir', dir, ...DATA_ARGS]);
    const replicaPort = await freePort();
    // Replication by command, not in the arguments: a node started again (after being killed)
    // comes back as an empty primary, and the sentinels make it a replica of the one they name.
    const replica = new RedisServer(replicaPort, ['--port', String(replicaPort), '--dir', dir, ...DATA_ARGS]);
    await primary.start();
    await replica.start();
    await replica.command('REPLICAOF', '127.0.0.1', String(primaryPort));
    const sentinels: RedisServer[] = [];
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const home = join(dir, `sentinel-${i}`);
      await mkdir(home, { recursive: true });
      // Sentinels rewrite their own config file (the current master, the other sentinels).
      const conf = join(home, 'sentinel.conf');
      await writeFile(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          'protected-mode no',
          `dir ${home}`,
          `sentinel monitor ${RedisSentinelSet.MASTER} 127.0.0.1 ${primaryPort} 2`,
          `sentinel down-after-milliseconds ${RedisSentinelSet.MASTER} ${downAfterMs}`,
          `sentinel failover-timeout ${RedisSentinelSet.MASTER} ${Math.max(3000, downAfterMs * 3)}`,
          `sentinel parallel-syncs ${RedisSentinelSet.MASTER} 1`,
          '',
        ].join('\n'),
      );
      sentinels.push(new RedisServer(port, [conf, '--sentinel']));
    }
    for (const sentinel of sentinels) await sentinel.start();
    const set = new RedisSentinelSet([primary, replica], sentinels, downAfterMs);
    await set.settled(60_000);
    return set;
  }

  /** The data node the sentinels name as primary. */
  async primary(sentinel = this.sentinels.find((s) => s.running)!): Promise<RedisServer> {
    const [, port] = (await sentinel.command('SENTINEL', 'get-master-addr-by-name', RedisSentinelSet.MASTER)) as [string, string];
    const node = this.data.find((n) => n.port === Number(port));
    if (!node) throw new Error(`sentinels name an unknown primary on port ${port}`);
    return node;
  }

  /**
   * Resolves with performance.now() once a running sentinel names `node` as the primary: what
   * a client asking them learns, a moment after the node itself accepts writes.
   */
  async announced(node: RedisServer, timeoutMs = 60_000): Promise<number> {
    const names = async (s: RedisServer) => (await this.primary(s).catch(() => undefined)) === node;
    await until(async () => (await Promise.all(this.sentinels.filter((s) => s.running).map(names))).some(Boolean), timeoutMs, `the sentinels naming ${node.port}`);
    return performance.now();
  }

  /**
   * Waits until every running sentinel names the same running primary, knows the other
   * sentinels and a replica, and that primary has its replica online: a failover can start.
   */
  async settled(timeoutMs = 60_000): Promise<void> {
    await until(
      async () => {
        const running = this.sentinels.filter((s) => s.running);
        const primaries = await Promise.all(running.map((s) => this.primary(s)));
        const primary = primaries[0]!;
        if (!primary.running || primaries.some((p) => p !== primary)) return false;
        for (const sentinel of running) {
          const fields = (await sentinel.command('SENTINEL', 'master', RedisSentinelSet.MASTER)) as string[];
          const info = Object.fromEntries(fields.flatMap((v, i) => (i % 2 ? [] : [[v, fields[i + 1]]])));
          if (Number(info['num-other-sentinels']) < running.length - 1 || Number(info['num-slaves']) < 1 || String(info.flags) !== 'master') return false;
        }
        const replication = String(await primary.command('INFO', 'replication'));
        return /role:master/.test(replication) && /slave0:.*state=online/.test(replication);
      },
      timeoutMs,
      'a settled Sentinel set (one primary, its replica online, sentinels agreeing)',
    );
  }

  async stop(): Promise<void> {
    await Promise.all([...this.sentinels, ...this.data].map((n) => n.kill()));
  }
}

/** Three primaries, their slots spread by `redis-cli --cluster create`; no replicas unless asked for. */
export class RedisClusterSet {
  private constructor(
    readonly nodes: RedisServer[],
    /** Replicas per primary. */
    readonly replicas: number,
  ) {}

  /** REDIS_URL for rekey: the nodes as seeds. */
  get url(): string {
    return `redis+cluster://${this.nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`;
  }

  static async create(dir: string, { replicas = 0 }: { replicas?: number } = {}): Promise<RedisClusterSet> {
    const nodes: RedisServer[] = [];
    for (let i = 0; i < 3 * (1 + replicas); i++) {
      const port = await freePort();
      const home = join(dir, `cluster-${port}`);
      await mkdir(home, { recursive: true });
      // An append-only file, so a restarted primary comes back with its keys (as a real one does).
      nodes.push(
        new RedisServer(port, ['--port', String(port), '--dir', home, ...DATA_ARGS, '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000', '--appendonly', 'yes']),
      );
    }
    for (const node of nodes) await node.start();
    const create = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'], { encoding: 'utf8', timeout: 60_000 });
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${create.stdout}\n${create.stderr}`);
    const set = new RedisClusterSet(nodes, replicas);
    await set.healthy(60_000);
    if (replicas) await set.replicated(60_000);
    return set;
  }

  /** The primary serving the slot of `key` (e.g. `{rekey}`). */
  async ownerOf(key: string): Promise<RedisServer> {
    const range = await this.rangeOf(key);
    const node = this.nodes.find((n) => n.port === Number(range[2][1]));
    if (!node) throw new Error(`no node serves the slot of ${key}`);
    return node;
  }

  /** The replicas of the primary serving the slot of `key`, as the Cluster lists them (`CLUSTER SLOTS`). */
  async replicasOf(key: string): Promise<RedisServer[]> {
    const range = await this.rangeOf(key);
    return (range.slice(3) as Array<[string, number, string]>).map(([, port]) => this.nodes.find((n) => n.port === Number(port))!);
  }

  private async rangeOf(key: string): Promise<SlotRange> {
    const node = this.nodes.find((n) => n.running)!;
    const slot = Number(await node.command('CLUSTER', 'KEYSLOT', key));
    const slots = (await node.command('CLUSTER', 'SLOTS')) as SlotRange[];
    const range = slots.find(([from, to]) => slot >= from && slot <= to);
    if (!range) throw new Error(`no node serves slot ${slot}`);
    return range;
  }

  /** Waits until every running node reports `cluster_state:ok` (all slots served). */
  async healthy(timeoutMs = 60_000): Promise<void> {
    await until(
      async () => {
        const states = await Promise.all(this.nodes.filter((n) => n.running).map((n) => n.command('CLUSTER', 'INFO')));
        return states.every((s) => /cluster_state:ok/.test(String(s)));
      },
      timeoutMs,
      'cluster_state:ok on every running node',
    );
  }

  /** Waits until every primary has its replicas online (a failover can then start). */
  private async replicated(timeoutMs: number): Promise<void> {
    await until(
      async () => {
        const slots = (await this.nodes[0]!.command('CLUSTER', 'SLOTS')) as SlotRange[];
        if (slots.some((range) => range.length - 3 < this.replicas)) return false;
        for (const [, , [, port]] of slots) {
          const info = String(await this.nodes.find((n) => n.port === Number(port))!.command('INFO', 'replication'));
          if ((info.match(/^slave\d+:.*state=online/gm) ?? []).length < this.replicas) return false;
        }
        return true;
      },
      timeoutMs,
      `every primary with ${this.replicas} replica(s) online`,
    );
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill()));
  }
}

/** One entry of `CLUSTER SLOTS`: a slot range, its primary, then its replicas (`[host, port, id]`). */
type SlotRange = [number, number, [string, number, string], ...Array<[string, number, string]>];
