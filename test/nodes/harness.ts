import helper from 'node-red-node-test-helper';

helper.init(require.resolve('node-red'));

/** The Node-RED test runtime, started once per spec file by {@link useNodeRed}. */
export { helper };

/** Starts the test runtime's server before the spec file and unloads flows after each test. */
export function useNodeRed(): void {
  before((done) => {
    helper.startServer(done);
  });
  afterEach(async () => {
    await helper.unload();
  });
  after((done) => {
    helper.stopServer(done);
  });
}
