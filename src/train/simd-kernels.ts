import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/**
 * simd-kernels.wat as assembled by wabt 1.0.32 (`wat2wasm simd-kernels.wat`), base64-encoded,
 * so that the package needs no build step for it.
 */
export const SIMD_KERNELS_WASM =
  'AGFzbQEAAAABeAtgBH9/f38AYA1/f39/f399fX19fX19AXxgBH9/f30Bf2AMf39/f39/f39/f39/AGAGf39/f39/AX1gAn19AX1gA39/fwF9YAd/f39/f399AX9gDn9/f39/f39/f39/f39/AGAGf39/f398AX9gCH9/f39/f39/AAIPAQNlbnYGbWVtb3J5AgABAwwLAAECAwQFBgcICQoHOQUJdHJhbnNwb3NlAAAFYWRhbXcAAQxmaXJzdEF0TGVhc3QAAglvZmZlclJvd3MAAwZyZXJhbmsACArlFwveAwIKfwh7IAJBfHEhBCADQXxxIQUgA0ECdCEMIAJBAnQhDUEAIQYCQANAIAYgBU8NASAGQQhqIQcgByAFSwRAIAUhBwtBACEIAkADQCAIIARPDQEgBiEJAkADQCAJIAdPDQEgACAIIANsIAlqQQJ0aiEKIAr9AAIAIQ4gCiAMaiEKIAr9AAIAIQ8gCiAMaiEKIAr9AAIAIRAgCiAMaiEKIAr9AAIAIREgDiAP/Q0AAQIDEBESEwQFBgcUFRYXIRIgDiAP/Q0ICQoLGBkaGwwNDg8cHR4fIRMgECAR/Q0AAQIDEBESEwQFBgcUFRYXIRQgECAR/Q0ICQoLGBkaGwwNDg8cHR4fIRUgASAJIAJsIAhqQQJ0aiELIAsgEiAU/Q0AAQIDBAUGBxAREhMUFRYX/QsCACALIA1qIQsgCyASIBT9DQgJCgsMDQ4PGBkaGxwdHh/9CwIAIAsgDWohCyALIBMgFf0NAAECAwQFBgcQERITFBUWF/0LAgAgCyANaiELIAsgEyAV/Q0ICQoLDA0ODxgZGhscHR4f/QsCACAJQQRqIQkMAAsLIAhBBGohCAwACwsgByEGDAALCyAAIAEgAiADQQAgAiAFIAMQCiAAIAEgAiADIAQgAkEAIAUQCgvaAwQDfwZ7AXwEfSAFQXxxIQ5EAAAAAAAAAAD9FCEVAkADQCANIA5PDQEgDUECdCEPIAAgD2r9AAIAIRAgASAPav0AAgAgECAM/RP95gH95AEhESACIA9q/QACACAG/RP95gEgEUMAAIA/IAaT/RP95gH95AEhEiADIA9q/QACACAH/RP95gEgESAR/eYBQwAAgD8gB5P9E/3mAf3kASETIAIgD2ogEv0LAgAgAyAPaiAT/QsCACAEIA9qIBAgC/0T/eYBIBIgCP0T/eYBIBP94wEgCf0T/eYBIAr9E/3kAf3nAf3lAf0LAgAgECAQ/eYBIRQgFSAU/V8gFCAU/Q0ICQoLDA0ODwABAgMEBQYH/V/98AH98AEhFSANQQRqIQ0MAAsLIBX9IQAgFf0hAaAhFgJAA0AgDSAFTw0BIA1BAnQhDyAAIA9qKgIAIRcgASAPaioCACAXIAyUkiEYIAIgD2oqAgAgBpQgGEMAAIA/IAaTlJIhGSADIA9qKgIAIAeUIBggGJRDAACAPyAHk5SSIRogAiAPaiAZOAIAIAMgD2ogGjgCACAEIA9qIBcgC5QgGSAIlCAakSAJlCAKkpWTOAIAIBYgFyAXlLugIRYgDUEBaiENDAALCyAWC4IBAgN/AXsgAkF8cSEFIAP9EyEHAkADQCAEIAVPDQEgBEECdCEGIAAgBmr9AAIAIAEgBmr9AAIA/eUBIAf9Rv1TDQEgBEEEaiEEDAALCwJAA0AgBCACTw0BIARBAnQhBiAAIAZqKgIAIAEgBmoqAgCTIANgDQEgBEEBaiEEDAALCyAEC68FBQF/AX0HfwJ9B38gAkF8cSEQIAJBcHEhGyALIAZBAnRBD2pqQXBxIRogASAEQQJ0aiESAkADQCAMIANPDQEgACAMIAJsQQJ0aiERIAkgBSAMakECdGohEyAHIAUgDGogBmxBAnRqIRggCCAYIAdraiEZIBMoAgAhFCARIBIgAiAGIAsgGhAEIQ0gDSAYIBQgBhAGEAUhFUEAIQ4CQANAIA4gEE8NASAOIBtJBEAgGiAOav0AAgAgFf0T/Ub9UwRAIBEgDkECdGohFyASIA5BAnRqIR0gF/0AAgAgHf0AAgD95QEgFf0T/Ub9pAEgF/0AAhAgHf0AAhD95QEgFf0T/Ub9pAFBBHRyIBf9AAIgIB39AAIg/eUBIBX9E/1G/aQBQQh0IBf9AAIwIB39AAIw/eUBIBX9E/1G/aQBQQx0cnIhHAJAA0AgHEUNASAcaCEPIBwgHEEBa3EhHCAXIA9BAnRqKgIAIB0gD0ECdGoqAgCTIRYgFiAVYARAIBggGSAKIBQgBiAEIA4gD2pqIBYQByEUIA0gGCAUIAYQBhAFIRULDAALCwsgDkEQaiEODAELIBEgDkECdGr9AAIAIBIgDkECdGr9AAIA/eUBIBX9E/1G/VMEQEEAIQ8DQCAOIA9qQQJ0IRcgESAXaioCACASIBdqKgIAkyEWIBYgFWAEQCAYIBkgCiAUIAYgBCAOIA9qaiAWEAchFCANIBggFCAGEAYQBSEVCyAPQQFqIQ8gD0EESQ0ACwsgDkEEaiEODAALCwJAA0AgDiACTw0BIA5BAnQhFyARIBdqKgIAIBIgF2oqAgCTIRYgFiAVYARAIBggGSAKIBQgBiAEIA5qIBYQByEUIA0gGCAUIAYQBhAFIRULIA5BAWohDgwACwsgEyAUNgIAIAxBAWohDAwACwsL6QIDBX8BewJ9IAJBcHEhB0MAAID/IQ0CQANAIAYgB08NASAGQQJ0IQogACAKav0AAgAgASAKav0AAgD95QEgACAKav0AAhAgASAKav0AAhD95QH96wEgACAKav0AAiAgASAKav0AAiD95QEgACAKav0AAjAgASAKav0AAjD95QH96wH96wEhCyAFIAZqIAv9CwIAIAsgCyAL/Q0ICQoLDA0ODwABAgMEBQYH/esBIgsgCyAL/Q0EBQYHAAECAwwNDg8ICQoL/esB/R8AIQwgCCADSSAMIA1ecgRAIAghCSAIIANGBEAgA0EBayEJBSAIQQFqIQgLAkADQCAJRQ0BIAlBAWtBAnQhCiAEIApqKgIAIAxgDQEgBCAKaiAEIApqKgIAOAIEIAlBAWshCQwACwsgBCAJQQJ0aiAMOAIAIAggA0YEQCAEIANBAWtBAnRqKgIAIQ0LCyAGQRBqIQYMAAsLIAQgCCADEAYLDAAgACABIAAgAV4bCx4AIAEgAkkEfUMAAID/BSAAIAJBAWtBAnRqKgIACwv0AQIDfwF9IAIgBUECdGooAgAhByADIQggAyAERgRAIARBAWshCCAIQQJ0IQkgACAJaioCACEKIAogBl4EQCADDwsgCiAGWwRAIAIgASAJaigCAEECdGooAgAgB0gEQCADDwsLCwJAA0AgCEUNASAIQQFrQQJ0IQkgACAJaioCACEKIAogBl4NASAKIAZbBEAgAiABIAlqKAIAQQJ0aigCACAHSA0CCyAAIAlqQQRqIAo4AgAgASAJakEEaiABIAlqKAIANgIAIAhBAWshCAwACwsgCEECdCEJIAAgCWogBjgCACABIAlqIAU2AgAgAyADIARJaguvAgMKfwJ8BH8gAUECdCEdIAkhDgJAA0AgDiAKTw0BIA4gBEkEQCACIA5BAnRqKAIAIQ8gACAOIB1saiEQBUF/IQ8gACADIA5qIARrIB1saiEQCyAFIA4gB2xBAnRqIREgESAGIA5BAnRqKAIAQQJ0aiETIAsgDiAIbEECdGohHEEAIRogESESAkADQCASIBNPDQEgEigCACEUIAIgFEECdGooAgAhFSAVIA9HBEAgACAUIB1saiEWRAAAAAAAAAAAIRhBACEXAkADQCAXIB1PDQEgFiAXaioCALsgECAXaioCALuhIRkgGCAZIBmioCEYIBdBBGohFwwACwsgHCANIBogCCAVIBgQCSEaCyASQQRqIRIMAAsLIAwgDkECdGogGjYCACAOQQFqIQ4MAAsLC9gBAgF/AXwgAiEGIAIgA0YEQCABIANBAWtBA3RqKwMAIQcgByAFYyAHIAVhIAAgA0EBa0ECdGooAgAgBEhxcgRAIAIPCyADQQFrIQYLAkADQCAGRQ0BIAEgBkEBa0EDdGorAwAhByAHIAVkIAcgBWEgACAGQQFrQQJ0aigCACAESnFyRQ0BIAEgBkEDdGogBzkDACAAIAZBAnRqIAAgBkEBa0ECdGooAgA2AgAgBkEBayEGDAALCyABIAZBA3RqIAU5AwAgACAGQQJ0aiAENgIAIAIgAiADSWoLWgECfyAEIQgCQANAIAggBU8NASAGIQkCQANAIAkgB08NASABIAkgAmwgCGpBAnRqIAAgCCADbCAJakECdGoqAgA4AgAgCUEBaiEJDAALCyAIQQFqIQgMAAsLCw==';

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
   * has room for `size` float32 values and then, from the next 16-byte boundary, four per
   * whole block of 16 columns of a row (see {@link offerRowsScratch}).
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

/** Float32 values of `offerRows`'s scratch for lists of `size` and rows of up to `width` values. */
export function offerRowsScratch(size: number, width: number): number {
  // The list, up to 15 bytes to the 16-byte boundary, four lane maxima per block of 16.
  return size + 4 + 4 * Math.ceil(width / 16);
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
