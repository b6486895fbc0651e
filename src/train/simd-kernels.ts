import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/**
 * simd-kernels.wat as assembled by wabt 1.0.32 (`wat2wasm simd-kernels.wat`), base64-encoded,
 * so that the package needs no build step for it.
 */
export const SIMD_KERNELS_WASM =
  'AGFzbQEAAAABdwtgBH9/f38AYA1/f39/f399fX19fX19AXxgBH9/f30Bf2AMf39/f39/f39/f39/AGAFf39/f38BfWACfX0BfWADf39/AX1gB39/f39/f30Bf2AOf39/f39/f39/f39/f38AYAZ/f39/f3wBf2AIf39/f39/f38AAg8BA2VudgZtZW1vcnkCAAEDDAsAAQIDBAUGBwgJCgc5BQl0cmFuc3Bvc2UAAAVhZGFtdwABDGZpcnN0QXRMZWFzdAACCW9mZmVyUm93cwADBnJlcmFuawAICsEVC94DAgp/CHsgAkF8cSEEIANBfHEhBSADQQJ0IQwgAkECdCENQQAhBgJAA0AgBiAFTw0BIAZBCGohByAHIAVLBEAgBSEHC0EAIQgCQANAIAggBE8NASAGIQkCQANAIAkgB08NASAAIAggA2wgCWpBAnRqIQogCv0AAgAhDiAKIAxqIQogCv0AAgAhDyAKIAxqIQogCv0AAgAhECAKIAxqIQogCv0AAgAhESAOIA/9DQABAgMQERITBAUGBxQVFhchEiAOIA/9DQgJCgsYGRobDA0ODxwdHh8hEyAQIBH9DQABAgMQERITBAUGBxQVFhchFCAQIBH9DQgJCgsYGRobDA0ODxwdHh8hFSABIAkgAmwgCGpBAnRqIQsgCyASIBT9DQABAgMEBQYHEBESExQVFhf9CwIAIAsgDWohCyALIBIgFP0NCAkKCwwNDg8YGRobHB0eH/0LAgAgCyANaiELIAsgEyAV/Q0AAQIDBAUGBxAREhMUFRYX/QsCACALIA1qIQsgCyATIBX9DQgJCgsMDQ4PGBkaGxwdHh/9CwIAIAlBBGohCQwACwsgCEEEaiEIDAALCyAHIQYMAAsLIAAgASACIANBACACIAUgAxAKIAAgASACIAMgBCACQQAgBRAKC9oDBAN/BnsBfAR9IAVBfHEhDkQAAAAAAAAAAP0UIRUCQANAIA0gDk8NASANQQJ0IQ8gACAPav0AAgAhECABIA9q/QACACAQIAz9E/3mAf3kASERIAIgD2r9AAIAIAb9E/3mASARQwAAgD8gBpP9E/3mAf3kASESIAMgD2r9AAIAIAf9E/3mASARIBH95gFDAACAPyAHk/0T/eYB/eQBIRMgAiAPaiAS/QsCACADIA9qIBP9CwIAIAQgD2ogECAL/RP95gEgEiAI/RP95gEgE/3jASAJ/RP95gEgCv0T/eQB/ecB/eUB/QsCACAQIBD95gEhFCAVIBT9XyAUIBT9DQgJCgsMDQ4PAAECAwQFBgf9X/3wAf3wASEVIA1BBGohDQwACwsgFf0hACAV/SEBoCEWAkADQCANIAVPDQEgDUECdCEPIAAgD2oqAgAhFyABIA9qKgIAIBcgDJSSIRggAiAPaioCACAGlCAYQwAAgD8gBpOUkiEZIAMgD2oqAgAgB5QgGCAYlEMAAIA/IAeTlJIhGiACIA9qIBk4AgAgAyAPaiAaOAIAIAQgD2ogFyALlCAZIAiUIBqRIAmUIAqSlZM4AgAgFiAXIBeUu6AhFiANQQFqIQ0MAAsLIBYLggECA38BeyACQXxxIQUgA/0TIQcCQANAIAQgBU8NASAEQQJ0IQYgACAGav0AAgAgASAGav0AAgD95QEgB/1G/VMNASAEQQRqIQQMAAsLAkADQCAEIAJPDQEgBEECdCEGIAAgBmoqAgAgASAGaioCAJMgA2ANASAEQQFqIQQMAAsLIAQLjAMFAX8BfQd/An0DfyACQXxxIRAgASAEQQJ0aiESAkADQCAMIANPDQEgACAMIAJsQQJ0aiERIAkgBSAMakECdGohEyAHIAUgDGogBmxBAnRqIRggCCAYIAdraiEZIBMoAgAhFCARIBIgAiAGIAsQBCENIA0gGCAUIAYQBhAFIRVBACEOAkADQCAOIBBPDQEgESAOQQJ0av0AAgAgEiAOQQJ0av0AAgD95QEgFf0T/Ub9UwRAQQAhDwNAIA4gD2pBAnQhFyARIBdqKgIAIBIgF2oqAgCTIRYgFiAVYARAIBggGSAKIBQgBiAEIA4gD2pqIBYQByEUIA0gGCAUIAYQBhAFIRULIA9BAWohDyAPQQRJDQALCyAOQQRqIQ4MAAsLAkADQCAOIAJPDQEgDkECdCEXIBEgF2oqAgAgEiAXaioCAJMhFiAWIBVgBEAgGCAZIAogFCAGIAQgDmogFhAHIRQgDSAYIBQgBhAGEAUhFQsgDkEBaiEODAALCyATIBQ2AgAgDEEBaiEMDAALCwvoAgMFfwF7A30gAkFwcSEGQwAAgP8hDAJAA0AgBSAGTw0BIAVBAnQhCSAAIAlq/QACACABIAlq/QACAP3lASAAIAlq/QACECABIAlq/QACEP3lAf3rASAAIAlq/QACICABIAlq/QACIP3lASAAIAlq/QACMCABIAlq/QACMP3lAf3rAf3rASEKIAcgA0kgCiAM/RP9RP1TcgRAIAr9HwAhCyAK/R8BIQ0gDSALXgRAIA0hCwsgCv0fAiENIA0gC14EQCANIQsLIAr9HwMhDSANIAteBEAgDSELCyAHIQggByADRgRAIANBAWshCAUgB0EBaiEHCwJAA0AgCEUNASAIQQFrQQJ0IQkgBCAJaioCACALYA0BIAQgCWogBCAJaioCADgCBCAIQQFrIQgMAAsLIAQgCEECdGogCzgCACAHIANGBEAgBCADQQFrQQJ0aioCACEMCwsgBUEQaiEFDAALCyAEIAcgAxAGCwwAIAAgASAAIAFeGwseACABIAJJBH1DAACA/wUgACACQQFrQQJ0aioCAAsL9AECA38BfSACIAVBAnRqKAIAIQcgAyEIIAMgBEYEQCAEQQFrIQggCEECdCEJIAAgCWoqAgAhCiAKIAZeBEAgAw8LIAogBlsEQCACIAEgCWooAgBBAnRqKAIAIAdIBEAgAw8LCwsCQANAIAhFDQEgCEEBa0ECdCEJIAAgCWoqAgAhCiAKIAZeDQEgCiAGWwRAIAIgASAJaigCAEECdGooAgAgB0gNAgsgACAJakEEaiAKOAIAIAEgCWpBBGogASAJaigCADYCACAIQQFrIQgMAAsLIAhBAnQhCSAAIAlqIAY4AgAgASAJaiAFNgIAIAMgAyAESWoLrwIDCn8CfAR/IAFBAnQhHSAJIQ4CQANAIA4gCk8NASAOIARJBEAgAiAOQQJ0aigCACEPIAAgDiAdbGohEAVBfyEPIAAgAyAOaiAEayAdbGohEAsgBSAOIAdsQQJ0aiERIBEgBiAOQQJ0aigCAEECdGohEyALIA4gCGxBAnRqIRxBACEaIBEhEgJAA0AgEiATTw0BIBIoAgAhFCACIBRBAnRqKAIAIRUgFSAPRwRAIAAgFCAdbGohFkQAAAAAAAAAACEYQQAhFwJAA0AgFyAdTw0BIBYgF2oqAgC7IBAgF2oqAgC7oSEZIBggGSAZoqAhGCAXQQRqIRcMAAsLIBwgDSAaIAggFSAYEAkhGgsgEkEEaiESDAALCyAMIA5BAnRqIBo2AgAgDkEBaiEODAALCwvYAQIBfwF8IAIhBiACIANGBEAgASADQQFrQQN0aisDACEHIAcgBWMgByAFYSAAIANBAWtBAnRqKAIAIARIcXIEQCACDwsgA0EBayEGCwJAA0AgBkUNASABIAZBAWtBA3RqKwMAIQcgByAFZCAHIAVhIAAgBkEBa0ECdGooAgAgBEpxckUNASABIAZBA3RqIAc5AwAgACAGQQJ0aiAAIAZBAWtBAnRqKAIANgIAIAZBAWshBgwACwsgASAGQQN0aiAFOQMAIAAgBkECdGogBDYCACACIAIgA0lqC1oBAn8gBCEIAkADQCAIIAVPDQEgBiEJAkADQCAJIAdPDQEgASAJIAJsIAhqQQJ0aiAAIAggA2wgCWpBAnRqKgIAOAIAIAlBAWohCQwACwsgCEEBaiEIDAALCws=';

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
  /**
   * Ranks the candidates of queries `qFrom` .. `qTo` by float64 distance: query q's float32
   * values are row q of `values` (`dim` each) when q < `shared`, else row `n` + q - `shared`;
   * its candidates are the `kept[q]` int32 matrix positions at `positions` + 4 q `fetch`, whose
   * values are rows of `values` and whose row indices are at `rowOf`; a candidate with the
   * query's own row index (q < `shared`) is passed over. Writes the int32 row indices of the `k`
   * nearest, nearest first and equal distances lowest row index first, at `out` + 4 q `k`, and
   * their number at `outCounts` + 4 q; `distances` has room for `k` float64 values.
   */
  rerank(
    values: number,
    dim: number,
    rowOf: number,
    n: number,
    shared: number,
    positions: number,
    kept: number,
    fetch: number,
    k: number,
    qFrom: number,
    qTo: number,
    out: number,
    outCounts: number,
    distances: number,
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
