/**
 * The leak receivers' counters, registered in the runtime's Prometheus registry. Labels
 * are fixed words (receiver names, reasons, outcomes): never a token, a delivery id or
 * anything a sender chose.
 */
import type client from 'prom-client';
import { sharedCounter } from '../metrics.js';

export const RECEIVERS = ['github', 'gitguardian', 'aws-health', 'webhook'] as const;
export type ReceiverName = (typeof RECEIVERS)[number];

/** Why a request was refused before anything was recorded. */
export type RejectReason =
  | 'busy'
  | 'source_busy'
  | 'auth_failures'
  | 'rate_limited'
  | 'too_large'
  | 'content_type'
  | 'missing_signature'
  | 'unknown_key'
  | 'bad_signature'
  | 'stale_timestamp'
  | 'bad_token'
  | 'malformed';

export interface LeakMetrics {
  rejected(receiver: ReceiverName, reason: RejectReason): void;
  reported(receiver: ReceiverName, outcome: string): void;
}

/** Counters in `registry`, created once per registry (a second route registration reuses them). */
export function leakMetrics(registry: client.Registry): LeakMetrics {
  const rejected = sharedCounter(registry, 'rekey_webhook_rejected_total', 'Leak receiver requests refused before anything was recorded, by receiver and reason', [
    'receiver',
    'reason',
  ]);
  const reported = sharedCounter(
    registry,
    'rekey_leak_reports_total',
    'Authenticated leak reports, one per reported token, by receiver and outcome (unknown, revoking, rotating, ...)',
    ['receiver', 'outcome'],
  );
  return {
    rejected: (receiver, reason) => rejected.inc({ receiver, reason }),
    reported: (receiver, outcome) => reported.inc({ receiver, outcome }),
  };
}
