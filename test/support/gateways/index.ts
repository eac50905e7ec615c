// The shared harness for the real-gateway targets' tests and bench/propagation.ts.
export * from './backend.js';
export * from './caddy.js';
export type * from './gateway.js';
export * from './haproxy.js';
export * from './ingress.js';
export * from './nginx.js';
export * from './process.js';
export * from './traffic.js';
