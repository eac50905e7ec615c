/**
 * When the client library and `rekey agent` renew what they keep (a token, a value): at a random
 * point of its remaining lifetime. Without the randomness, clients that got theirs at the same
 * moment (started together, told of a rotation together) would come back together, and a value's
 * expiry is the same instant for every client (the server caps it at the secret's next scheduled
 * rotation), so each renewal ending with the same expiry (a 304) would bring the whole fleet back
 * after a quarter of what was left, a herd converging on the rotation instant. This file imports
 * nothing (it is part of `rekey/client`).
 */

/** Renewals are no closer together than this: what is left of a lifetime shorter than it is used to its end, then renewed. */
export const RENEW_FLOOR_MS = 1_000;

/**
 * How long from now to renew something with `leftMs` of its lifetime left: a random point
 * between 3/4 of `latest` and `latest` of that time (0.6 to 0.8 for the default 0.8), at least
 * {@link RENEW_FLOOR_MS}, and never past the expiry: at most `leftMs` (0 when nothing is left).
 * A renewal that answers with the same absolute expiry therefore comes back at most once within
 * the floor before it.
 * @param latest above 0, at most 1 @defaultValue 0.8
 * @param random a number in [0, 1) @defaultValue Math.random
 */
export function renewalDelay(leftMs: number, latest = 0.8, random: () => number = Math.random): number {
  const left = Math.max(0, leftMs);
  const fraction = latest * (0.75 + 0.25 * random());
  return Math.min(left, Math.max(fraction * left, RENEW_FLOOR_MS));
}
