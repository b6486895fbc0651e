import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/**
 * simd-kernels.wat as assembled by wabt 1.0.32 (`wat2wasm simd-kernels.wat`), base64-encoded,
 * so that the package needs no build step for it.
 */
export const SIMD_KERNELS_WASM =
  'AGFzbQEAAAABXAlgBH9/f38AYA1/f39/f399fX19fX19AXxgBH9/f30Bf2AMf39/f39/f39/f39/AGAFf39/f38BfWACfX0BfWADf39/AX1gB39/f39/f30Bf2AIf39/f39/f38AAg8BA2VudgZtZW1vcnkCAAEDCgkAAQIDBAUGBwgHMAQJdHJhbnNwb3NlAAAFYWRhbXcAAQxmaXJzdEF0TGVhc3QAAglvZmZlclJvd3MAAwq2EQneAwIKfwh7IAJBfHEhBCADQXxxIQUgA0ECdCEMIAJBAnQhDUEAIQYCQANAIAYgBU8NASAGQQhqIQcgByAFSwRAIAUhBwtBACEIAkADQCAIIARPDQEgBiEJAkADQCAJIAdPDQEgACAIIANsIAlqQQJ0aiEKIAr9AAIAIQ4gCiAMaiEKIAr9AAIAIQ8gCiAMaiEKIAr9AAIAIRAgCiAMaiEKIAr9AAIAIREgDiAP/Q0AAQIDEBESEwQFBgcUFRYXIRIgDiAP/Q0ICQoLGBkaGwwNDg8cHR4fIRMgECAR/Q0AAQIDEBESEwQFBgcUFRYXIRQgECAR/Q0ICQoLGBkaGwwNDg8cHR4fIRUgASAJIAJsIAhqQQJ0aiELIAsgEiAU/Q0AAQIDBAUGBxAREhMUFRYX/QsCACALIA1qIQsgCyASIBT9DQgJCgsMDQ4PGBkaGxwdHh/9CwIAIAsgDWohCyALIBMgFf0NAAECAwQFBgcQERITFBUWF/0LAgAgCyANaiELIAsgEyAV/Q0ICQoLDA0ODxgZGhscHR4f/QsCACAJQQRqIQkMAAsLIAhBBGohCAwACwsgByEGDAALCyAAIAEgAiADQQAgAiAFIAMQCCAAIAEgAiADIAQgAkEAIAUQCAvaAwQDfwZ7AXwEfSAFQXxxIQ5EAAAAAAAAAAD9FCEVAkADQCANIA5PDQEgDUECdCEPIAAgD2r9AAIAIRAgASAPav0AAgAgECAM/RP95gH95AEhESACIA9q/QACACAG/RP95gEgEUMAAIA/IAaT/RP95gH95AEhEiADIA9q/QACACAH/RP95gEgESAR/eYBQwAAgD8gB5P9E/3mAf3kASETIAIgD2ogEv0LAgAgAyAPaiAT/QsCACAEIA9qIBAgC/0T/eYBIBIgCP0T/eYBIBP94wEgCf0T/eYBIAr9E/3kAf3nAf3lAf0LAgAgECAQ/eYBIRQgFSAU/V8gFCAU/Q0ICQoLDA0ODwABAgMEBQYH/V/98AH98AEhFSANQQRqIQ0MAAsLIBX9IQAgFf0hAaAhFgJAA0AgDSAFTw0BIA1BAnQhDyAAIA9qKgIAIRcgASAPaioCACAXIAyUkiEYIAIgD2oqAgAgBpQgGEMAAIA/IAaTlJIhGSADIA9qKgIAIAeUIBggGJRDAACAPyAHk5SSIRogAiAPaiAZOAIAIAMgD2ogGjgCACAEIA9qIBcgC5QgGSAIlCAakSAJlCAKkpWTOAIAIBYgFyAXlLugIRYgDUEBaiENDAALCyAWC4IBAgN/AXsgAkF8cSEFIAP9EyEHAkADQCAEIAVPDQEgBEECdCEGIAAgBmr9AAIAIAEgBmr9AAIA/eUBIAf9Rv1TDQEgBEEEaiEEDAALCwJAA0AgBCACTw0BIARBAnQhBiAAIAZqKgIAIAEgBmoqAgCTIANgDQEgBEEBaiEEDAALCyAEC4wDBQF/AX0HfwJ9A38gAkF8cSEQIAEgBEECdGohEgJAA0AgDCADTw0BIAAgDCACbEECdGohESAJIAUgDGpBAnRqIRMgByAFIAxqIAZsQQJ0aiEYIAggGCAHa2ohGSATKAIAIRQgESASIAIgBiALEAQhDSANIBggFCAGEAYQBSEVQQAhDgJAA0AgDiAQTw0BIBEgDkECdGr9AAIAIBIgDkECdGr9AAIA/eUBIBX9E/1G/VMEQEEAIQ8DQCAOIA9qQQJ0IRcgESAXaioCACASIBdqKgIAkyEWIBYgFWAEQCAYIBkgCiAUIAYgBCAOIA9qaiAWEAchFCANIBggFCAGEAYQBSEVCyAPQQFqIQ8gD0EESQ0ACwsgDkEEaiEODAALCwJAA0AgDiACTw0BIA5BAnQhFyARIBdqKgIAIBIgF2oqAgCTIRYgFiAVYARAIBggGSAKIBQgBiAEIA5qIBYQByEUIA0gGCAUIAYQBhAFIRULIA5BAWohDgwACwsgEyAUNgIAIAxBAWohDAwACwsL6AIDBX8BewN9IAJBcHEhBkMAAID/IQwCQANAIAUgBk8NASAFQQJ0IQkgACAJav0AAgAgASAJav0AAgD95QEgACAJav0AAhAgASAJav0AAhD95QH96wEgACAJav0AAiAgASAJav0AAiD95QEgACAJav0AAjAgASAJav0AAjD95QH96wH96wEhCiAHIANJIAogDP0T/UT9U3IEQCAK/R8AIQsgCv0fASENIA0gC14EQCANIQsLIAr9HwIhDSANIAteBEAgDSELCyAK/R8DIQ0gDSALXgRAIA0hCwsgByEIIAcgA0YEQCADQQFrIQgFIAdBAWohBwsCQANAIAhFDQEgCEEBa0ECdCEJIAQgCWoqAgAgC2ANASAEIAlqIAQgCWoqAgA4AgQgCEEBayEIDAALCyAEIAhBAnRqIAs4AgAgByADRgRAIAQgA0EBa0ECdGoqAgAhDAsLIAVBEGohBQwACwsgBCAHIAMQBgsMACAAIAEgACABXhsLHgAgASACSQR9QwAAgP8FIAAgAkEBa0ECdGoqAgALC/QBAgN/AX0gAiAFQQJ0aigCACEHIAMhCCADIARGBEAgBEEBayEIIAhBAnQhCSAAIAlqKgIAIQogCiAGXgRAIAMPCyAKIAZbBEAgAiABIAlqKAIAQQJ0aigCACAHSARAIAMPCwsLAkADQCAIRQ0BIAhBAWtBAnQhCSAAIAlqKgIAIQogCiAGXg0BIAogBlsEQCACIAEgCWooAgBBAnRqKAIAIAdIDQILIAAgCWpBBGogCjgCACABIAlqQQRqIAEgCWooAgA2AgAgCEEBayEIDAALCyAIQQJ0IQkgACAJaiAGOAIAIAEgCWogBTYCACADIAMgBElqC1oBAn8gBCEIAkADQCAIIAVPDQEgBiEJAkADQCAJIAdPDQEgASAJIAJsIAhqQQJ0aiAAIAggA2wgCWpBAnRqKgIAOAIAIAlBAWohCQwACwsgCEEBaiEIDAALCws=';

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
  /**
   * Offers each of `count` rows of `products` (`width` values each; row i for query `first` + i,
   * column j for matrix position `from` + j, scored products[i][j] - squares[from + j]) to the
   * query's list of its `size` largest scores: float32 `scores` and int32 `positions`
   * `[queries, size]`, largest first, equal scores ordered by the int32 `rowOf[position]`, lowest
   * first; the int32 `kept[query]` counts the entries a list holds and is updated. `scratch`
   * has room for `size` float32 values.
   */
  offerRows(
    products: number,
    squares: number,
    width: number,
    count: number,
    from: number,
    first: number,
    size: number,
    scores: number,
    positions: number,
    kept: number,
    rowOf: number,
    scratch: number,
  ): void;
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
