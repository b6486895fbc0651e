import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/**
 * simd-kernels.wat as assembled by wabt 1.0.32 (`wat2wasm simd-kernels.wat`), base64-encoded,
 * so that the package needs no build step for it.
 */
export const SIMD_KERNELS_WASM =
  'AGFzbQEAAAABLARgBH9/f38AYA1/f39/f399fX19fX19AXxgBH9/f30Bf2AIf39/f39/f38AAg8BA2VudgZtZW1vcnkCAAEDBQQAAQIDByQDCXRyYW5zcG9zZQAABWFkYW13AAEMZmlyc3RBdExlYXN0AAIKnAkE3gMCCn8IeyACQXxxIQQgA0F8cSEFIANBAnQhDCACQQJ0IQ1BACEGAkADQCAGIAVPDQEgBkEIaiEHIAcgBUsEQCAFIQcLQQAhCAJAA0AgCCAETw0BIAYhCQJAA0AgCSAHTw0BIAAgCCADbCAJakECdGohCiAK/QACACEOIAogDGohCiAK/QACACEPIAogDGohCiAK/QACACEQIAogDGohCiAK/QACACERIA4gD/0NAAECAxAREhMEBQYHFBUWFyESIA4gD/0NCAkKCxgZGhsMDQ4PHB0eHyETIBAgEf0NAAECAxAREhMEBQYHFBUWFyEUIBAgEf0NCAkKCxgZGhsMDQ4PHB0eHyEVIAEgCSACbCAIakECdGohCyALIBIgFP0NAAECAwQFBgcQERITFBUWF/0LAgAgCyANaiELIAsgEiAU/Q0ICQoLDA0ODxgZGhscHR4f/QsCACALIA1qIQsgCyATIBX9DQABAgMEBQYHEBESExQVFhf9CwIAIAsgDWohCyALIBMgFf0NCAkKCwwNDg8YGRobHB0eH/0LAgAgCUEEaiEJDAALCyAIQQRqIQgMAAsLIAchBgwACwsgACABIAIgA0EAIAIgBSADEAMgACABIAIgAyAEIAJBACAFEAML2gMEA38GewF8BH0gBUF8cSEORAAAAAAAAAAA/RQhFQJAA0AgDSAOTw0BIA1BAnQhDyAAIA9q/QACACEQIAEgD2r9AAIAIBAgDP0T/eYB/eQBIREgAiAPav0AAgAgBv0T/eYBIBFDAACAPyAGk/0T/eYB/eQBIRIgAyAPav0AAgAgB/0T/eYBIBEgEf3mAUMAAIA/IAeT/RP95gH95AEhEyACIA9qIBL9CwIAIAMgD2ogE/0LAgAgBCAPaiAQIAv9E/3mASASIAj9E/3mASAT/eMBIAn9E/3mASAK/RP95AH95wH95QH9CwIAIBAgEP3mASEUIBUgFP1fIBQgFP0NCAkKCwwNDg8AAQIDBAUGB/1f/fAB/fABIRUgDUEEaiENDAALCyAV/SEAIBX9IQGgIRYCQANAIA0gBU8NASANQQJ0IQ8gACAPaioCACEXIAEgD2oqAgAgFyAMlJIhGCACIA9qKgIAIAaUIBhDAACAPyAGk5SSIRkgAyAPaioCACAHlCAYIBiUQwAAgD8gB5OUkiEaIAIgD2ogGTgCACADIA9qIBo4AgAgBCAPaiAXIAuUIBkgCJQgGpEgCZQgCpKVkzgCACAWIBcgF5S7oCEWIA1BAWohDQwACwsgFguCAQIDfwF7IAJBfHEhBSAD/RMhBwJAA0AgBCAFTw0BIARBAnQhBiAAIAZq/QACACABIAZq/QACAP3lASAH/Ub9Uw0BIARBBGohBAwACwsCQANAIAQgAk8NASAEQQJ0IQYgACAGaioCACABIAZqKgIAkyADYA0BIARBAWohBAwACwsgBAtaAQJ/IAQhCAJAA0AgCCAFTw0BIAYhCQJAA0AgCSAHTw0BIAEgCSACbCAIakECdGogACAIIANsIAlqQQJ0aioCADgCACAJQQFqIQkMAAsLIAhBAWohCAwACwsL';

/** The loops of simd-kernels.wat; every address is a byte offset into the backend's memory. */
export interface SimdKernels {
  /** `dst` = `src` transposed, both float32; `src` `[rows, cols]`, `dst` `[cols, rows]`. */
  transpose(src: number, dst: number, rows: number, cols: number): void;
  /**
   * One AdamW step over `n` float32 weights `w` with gradients `g`, the gradient of an L2
   * penalty (`l2x2` = 2 l2) added; updates the moments `m`, `v` in place and writes the new
   * weights to `out`. Returns sum(w^2) of the weights before the step.
   */
  adamw(
    w: number,
    g: number,
    m: number,
    v: number,
    out: number,
    n: number,
    beta1: number,
    beta2: number,
    stepSize: number,
    rootInv: number,
    epsilon: number,
    decay: number,
    l2x2: number,
  ): number;
  /** The first j in [0, count) with a[j] - b[j] >= t (float32 arrays), or count. */
  firstAtLeast(a: number, b: number, count: number, t: number): number;
}

const bound = new WeakMap<BackendWasm, SimdKernels | null>();

/**
 * The kernels working in `backend`'s memory, compiled once per backend; undefined where they
 * cannot be had (a runtime without WebAssembly SIMD, or a backend build that does not export its
 * memory), and callers then use the backend's own kernels.
 */
export function simdKernels(backend: BackendWasm): SimdKernels | undefined {
  if (!bound.has(backend)) bound.set(backend, instantiate(backend));
  return bound.get(backend) ?? undefined;
}

function instantiate(backend: BackendWasm): SimdKernels | null {
  const memory = (backend.wasm as unknown as { asm?: { memory?: unknown } }).asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) return null;
  try {
    const module = new WebAssembly.Module(Buffer.from(SIMD_KERNELS_WASM, 'base64'));
    const instance = new WebAssembly.Instance(module, { env: { memory } });
    return instance.exports as unknown as SimdKernels;
  } catch {
    return null;
  }
}

/** Byte offset of a tensor's data in the wasm backend's memory. */
export function addressOf(backend: BackendWasm, dataId: object): number {
  return backend.getMemoryOffset(dataId);
}
