/** `rekey` with the test-only providers registered, for tests that run real worker processes. */
import { runCli } from '../../src/cli/main.js';
import { providers } from '../../src/registry.js';
import { slowKeysetProvider, slowLocalProvider } from './slow-providers.js';

process.exitCode = await runCli(process.argv, [...providers, slowKeysetProvider, slowLocalProvider]);
