/**
 * A TCP port on 127.0.0.1 that nothing listens on, for tests of an unreachable service. Not a
 * port taken and given back (freePort()): the kernel may hand that one to the next freePort() of
 * a file running beside (a gateway, a PostgreSQL, a Redis), and a request meant to be refused
 * would reach it and hang or be answered. This one is privileged, below the ephemeral range that
 * freePort() draws from, and not on fetch's list of blocked ports.
 */
export const CLOSED_PORT = 3;
