// Loads the TF.js backend once for the whole test run and says which one the tests use.
import { initBackend } from '../src/train/backend';

export const mochaHooks = {
  async beforeAll(this: Mocha.Context): Promise<void> {
    this.timeout(60000);
    const name = await initBackend({ log: () => undefined });
    process.stdout.write(`TF.js backend for this test run: ${name}\n`);
  },
};
