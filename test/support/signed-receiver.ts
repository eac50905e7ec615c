// A Standard Webhooks receiver (providers/webhook/test/receiver.ts) whose signing secret rekey
// reads from an environment variable of this process: what a webhook target's tests start with.
import { randomBytes } from 'node:crypto';
import { startReceiver, type Receiver } from '../../providers/webhook/test/receiver.js';

export interface SignedReceiver {
  receiver: Receiver;
  /** rekey.yaml's `env:` line that lets the config read the signing secret. */
  envAllow: string;
  /** A webhook provider's `secret:` value: the reference to that variable. */
  secretRef: string;
  /** Closes the receiver and removes the variable. */
  close(): Promise<void>;
}

/** A fresh `whsec_` secret in `<name>_TEST_WHSEC_<pid>`, and a receiver checking signatures with it. */
export async function startSignedReceiver(name: string): Promise<SignedReceiver> {
  const variable = `${name}_TEST_WHSEC_${process.pid}`;
  const whsec = `whsec_${randomBytes(32).toString('base64')}`;
  process.env[variable] = whsec;
  let receiver: Receiver;
  try {
    receiver = await startReceiver(whsec);
  } catch (error) {
    delete process.env[variable];
    throw error;
  }
  return {
    receiver,
    envAllow: `env: { allow: ["${name}_TEST_*"] }`,
    secretRef: `\${env:${variable}}`,
    async close() {
      await receiver.close();
      delete process.env[variable];
    },
  };
}
