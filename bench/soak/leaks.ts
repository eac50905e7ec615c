/**
 * Leak reports arriving at random: a live key (current or previous) is reported to
 * `rekey server`'s Standard Webhooks receiver (POST /webhooks/leaks), like a scanner would;
 * when the server is down the sender retries the same delivery (same webhook-id) until it
 * answers. Then the key is sent through HAProxy back to back until HAProxy refuses it:
 * leak-to-blocked is measured from the report's accepted POST to that refusal. Now and
 * then the same delivery is sent again and must come back as a duplicate, with no second run.
 */
import { randomUUID } from 'node:crypto';
import { standardWebhookSignature } from '../../src/core/kit/standard-webhooks.js';
import { type Checker, probe } from './checker.js';
import { type LeakSample, type SoakState, sleep } from './state.js';

export interface LeakSenderOptions {
  serverUrl: () => string;
  webhookSecret: string;
  gateway: { url: string; header: string };
  /** Mean pause between reports. */
  meanIntervalMs: number;
  /** Give up waiting for the gateway to refuse the key after this long. */
  blockTimeoutMs: number;
}

export class LeakSender {
  private loop: Promise<void> | undefined;
  private stopped = false;
  private readonly inFlight = new Set<Promise<void>>();
  duplicatesAnswered = 0;
  duplicatesWrong = 0;
  sendErrors = 0;

  constructor(
    private readonly s: SoakState,
    private readonly checker: Checker,
    private readonly o: LeakSenderOptions,
  ) {}

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        await sleep(this.o.meanIntervalMs * (0.5 + Math.random()));
        if (this.stopped) break;
        const task = this.leakOne().catch((error: unknown) => {
          this.sendErrors += 1;
          this.s.note(`leak error: ${(error as Error).message}`);
        });
        this.inFlight.add(task);
        void task.finally(() => this.inFlight.delete(task));
      }
    })();
  }

  /** Stops sending new reports and waits for the ones in flight to be blocked (or time out). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    await Promise.all([...this.inFlight]);
  }

  private async leakOne(): Promise<void> {
    const { secrets } = this.s.config;
    const secret = secrets[Math.floor(Math.random() * secrets.length)]!;
    const versions = (await this.checker.versions(secret, ['current', 'previous']))?.filter((v) => !v.compromised_at);
    if (!versions?.length) return;
    const target = (Math.random() < 0.3 ? versions.find((v) => v.state === 'previous') : undefined) ?? versions.find((v) => v.state === 'current');
    if (!target) return;
    const value = await this.checker.value(secret, target);
    if (!value) return;
    const id = `msg_${randomUUID()}`;
    const body = JSON.stringify({ token: value.reveal() });
    const { answer, attempts, acceptedAt } = await this.send(id, body);
    if (!answer) return;
    const sample: LeakSample = { secret, version: target.number, was: target.state, outcome: answer.outcome, blockedMs: undefined, attempts, duplicateChecked: false };
    this.s.leaks.push(sample);
    this.s.note(`leaked ${secret} v${target.number} (${target.state}): ${answer.outcome}`);
    if (Math.random() < 0.2) {
      // A redelivery of the same report: one report, one run.
      const again = await this.send(id, body);
      sample.duplicateChecked = true;
      if (again.answer?.duplicate) this.duplicatesAnswered += 1;
      else {
        this.duplicatesWrong += 1;
        this.s.violate(6, `redelivered leak report ${id} for ${secret} v${target.number} was not recognised as a duplicate (${JSON.stringify(again.answer)})`);
      }
    }
    // Back to back until HAProxy refuses the key.
    const deadline = acceptedAt + this.o.blockTimeoutMs;
    while (Date.now() < deadline) {
      const status = await probe(this.o.gateway.url, this.o.gateway.header, value, 2000);
      if (status === 401) {
        sample.blockedMs = Date.now() - acceptedAt;
        return;
      }
      await sleep(5);
    }
  }

  /** POSTs until the server answers 200 (it may be down, or restarting). */
  private async send(id: string, body: string): Promise<{ answer?: { outcome: string; duplicate: boolean }; attempts: number; acceptedAt: number }> {
    const key = Buffer.from(this.o.webhookSecret.slice('whsec_'.length), 'base64');
    const deadline = Date.now() + 60_000;
    for (let attempts = 1; Date.now() < deadline; attempts++) {
      const timestamp = String(Math.floor(Date.now() / 1000));
      const sentAt = Date.now();
      try {
        const response = await fetch(new URL('/webhooks/leaks', this.o.serverUrl()), {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': standardWebhookSignature(key, id, timestamp, body) },
          body,
          signal: AbortSignal.timeout(10_000),
        });
        const text = await response.text();
        if (response.status === 200) return { answer: JSON.parse(text) as { outcome: string; duplicate: boolean }, attempts, acceptedAt: sentAt };
        this.s.note(`leak report answered ${response.status}: ${text.slice(0, 200)}`);
      } catch {
        // Server down or restarting: a real sender retries the same delivery.
      }
      await sleep(250);
    }
    this.sendErrors += 1;
    return { attempts: 0, acceptedAt: 0 };
  }
}
