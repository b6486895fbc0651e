import * as tf from '@tensorflow/tfjs';
import { WASM_MATMUL_ENV, installWasmMatMul } from './wasm-matmul';

/** TF.js backends this package can run on, fastest first. */
export const BACKENDS = ['tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface BackendOptions {
  /** Use this backend or fail; default: the first of {@link BACKENDS} that loads. */
  prefer?: BackendName | 'auto';
  log?: (line: string) => void;
}

let chosen: Promise<BackendName> | undefined;

/**
 * Picks the TF.js backend once per process: tfjs-node ('tensorflow') when it is installed and
 * loads, otherwise WebAssembly, otherwise plain JavaScript. `CUSTOM_CLASSIFIER_BACKEND` in the
 * environment forces one, as does `prefer`.
 *
 * On WebAssembly the matrix product kernel is replaced by one that keeps backpropagation on the
 * fast XNNPACK path (see {@link installWasmMatMul}), which makes training several times faster;
 * `CUSTOM_CLASSIFIER_WASM_MATMUL=stock` in the environment keeps the backend's own kernel.
 */
export function initBackend(options: BackendOptions = {}): Promise<BackendName> {
  const wanted = options.prefer ?? process.env.CUSTOM_CLASSIFIER_BACKEND ?? 'auto';
  if (wanted !== 'auto' && !(BACKENDS as readonly string[]).includes(wanted)) {
    return Promise.reject(
      new Error(`backend: expected one of auto, ${BACKENDS.join(', ')}; got "${wanted}"`),
    );
  }
  chosen ??= choose(wanted as BackendName | 'auto', options.log ?? (() => undefined));
  return chosen.then((name) => {
    if (wanted !== 'auto' && name !== wanted) {
      throw new Error(`backend: "${name}" is already in use in this process; cannot switch`);
    }
    return name;
  });
}

/** The backend in use, once {@link initBackend} has finished. */
export function backendName(): string {
  return tf.getBackend();
}

async function choose(wanted: BackendName | 'auto', log: (line: string) => void) {
  const candidates = wanted === 'auto' ? BACKENDS : [wanted];
  const reasons: string[] = [];
  for (const name of candidates) {
    try {
      await load(name);
      if (await tf.setBackend(name)) {
        await tf.ready();
        if (name === 'wasm' && process.env[WASM_MATMUL_ENV] !== 'stock') installWasmMatMul();
        log(`TF.js backend: ${name}`);
        return name;
      }
      reasons.push(`${name}: did not initialise`);
    } catch (err) {
      reasons.push(`${name}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(`backend: none could be loaded (${reasons.join('; ')})`);
}

/** npm packages that register each backend; tfjs-node is optional and often absent. */
const PACKAGES: Record<BackendName, string | undefined> = {
  tensorflow: '@tensorflow/tfjs-node',
  wasm: '@tensorflow/tfjs-backend-wasm',
  cpu: undefined,
};

async function load(name: BackendName): Promise<void> {
  const pkg = PACKAGES[name];
  if (pkg !== undefined) await import(pkg);
}
