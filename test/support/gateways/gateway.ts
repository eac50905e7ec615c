// What every gateway launcher returns: enough for a test or the benchmark to open the
// provider against it and to send requests through it.
export interface Gateway {
  name: 'haproxy' | 'caddy' | 'nginx';
  /** A URL through the gateway that needs a valid key. */
  url: string;
  /** The header the gateway reads the key from. */
  header: string;
  /** The private temp directory holding config, map and logs. */
  dir: string;
  /** The provider's `providers:` entry (without `type`) pointing at this gateway, probe included. */
  providerConfig: Record<string, unknown>;
  /** Stops and starts the same gateway with the same config and files. */
  restart(): Promise<void>;
  /** Stops the process by PID and removes the temp directory. */
  stop(): Promise<void>;
}
