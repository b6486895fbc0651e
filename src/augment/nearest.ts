import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { SimdKernels, simdKernels } from '../train/simd-kernels';

/** Bytes one `[queries, rows]` float32 score matrix of a chunk may take. */
const MATRIX_BYTES = 64 * 1024 * 1024;

/**
 * Most queries per chunk. Smaller chunks leave fewer distances between queries to be computed
 * twice but make slower products; 1024 was fastest for classes of 1000 to 6000 rows x 1024.
 */
const MAX_CHUNK = 1024;

export interface NearestOptions {
  /** Upper bound for the intermediate `[chunk, rows]` matrices of one chunk, in bytes. */
  maxMatrixBytes?: number;
}

/**
 * Exact k nearest neighbours by Euclidean distance, brute force.
 *
 * `x` is `[n, dim]` float32, row-major. For each index in `queries`, returns the indices (into
 * `x`) of its `k` nearest rows among `rows`, nearest first, never the query itself; fewer when
 * `rows` holds fewer others. Equal distances are ordered lowest index first.
 *
 * Embeddings have about a thousand dimensions, where tree indexes visit nearly every point, so the
 * distances are computed as matrix products in TF.js, a chunk of queries at a time so that memory
 * stays bounded. Queries that are among `rows` (as in SMOTE) are placed first, and a chunk's
 * product with the rows after its start also gives the later queries their distances to the
 * chunk's rows: each distance between two queries is computed once, not twice. Candidates are
 * then re-ranked with float64 distances, because the float32 product form loses precision when
 * rows are far from the origin and close to each other.
 *
 * (A brute-force search that takes one pair of rows at a time, such as usearch's exact search,
 * ran 2 to 4 times slower than these products for thousands of 1024-value rows.)
 *
 * @example
 * // one feature: rows 0..3 hold 0, 1, 2, 10
 * nearestNeighbours(Float32Array.of(0, 1, 2, 10), 1, [0, 1, 2, 3], [0], 2); // [Int32Array [1, 2]]
 */
export function nearestNeighbours(
  x: Float32Array,
  dim: number,
  rows: readonly number[],
  queries: readonly number[],
  k: number,
  options: NearestOptions = {},
): Int32Array[] {
  checkArguments(x, dim, rows, queries, k);
  if (rows.length === 0 || k === 0) return queries.map(() => new Int32Array(0));

  // Twice as many candidates as needed leaves room for float32 rounding to misorder them.
  const fetch = Math.min(rows.length, 2 * k + 1);
  const layout = arrange(rows, queries);
  const n = layout.order.length;
  const mean = columnMean(x, dim, rows);
  const rowOf = Int32Array.from(layout.order, (p) => rows[p]);
  const centred = gather(x, dim, rowOf, mean);
  const squares = rowSquares(centred, dim);
  const budget = (options.maxMatrixBytes ?? MATRIX_BYTES) / 4 / 2;
  const chunk = Math.max(1, Math.min(MAX_CHUNK, Math.floor(budget / n)));
  const best = new BestScores(layout.searched.length, fetch, rowOf);
  const loose = new Float32Array(layout.searched.length).fill(-Infinity);
  const arrays = new ScanArrays([squares, loose], slackFor(squares));
  const twice = tf.tidy(() => tf.mul(tf.tensor2d(centred, [n, dim]), 2) as tf.Tensor2D);

  try {
    const shared = layout.sharedCount;
    for (let start = 0; start < shared; start += chunk) {
      const end = Math.min(start + chunk, shared);
      const a = centred.subarray(start * dim, end * dim);
      arrays.scan(productWith(a, twice, start), (products, [sq, floors]) => {
        offerRows(best, arrays, products, sq, { first: start, count: end - start, from: start });
        offerColumns(best, arrays, products, [sq, floors], { start, end, shared });
      });
    }
    for (let start = shared; start < layout.searched.length; start += chunk) {
      const part = layout.searched.slice(start, start + chunk);
      arrays.scan(productWith(gather(x, dim, part, mean), twice, 0), (products, [sq]) =>
        offerRows(best, arrays, products, sq, { first: start, count: part.length, from: 0 }),
      );
    }
  } finally {
    twice.dispose();
    arrays.dispose();
  }

  const nearest = layout.searched.map((query, i) =>
    rerank(
      x,
      dim,
      query,
      Array.from(best.positionsOf(i), (p) => rowOf[p]),
      k,
    ),
  );
  return queries.map((q) => nearest[layout.searchedIndex.get(q)!]);
}

function checkArguments(
  x: Float32Array,
  dim: number,
  rows: readonly number[],
  queries: readonly number[],
  k: number,
): void {
  if (!Number.isInteger(dim) || dim <= 0 || x.length % dim !== 0) {
    throw new Error(`nearest neighbours: dim must divide x (${x.length} values), got ${dim}`);
  }
  if (!Number.isInteger(k) || k < 0) {
    throw new Error(`nearest neighbours: k must be a whole number >= 0, got ${k}`);
  }
  const n = x.length / dim;
  for (const list of [rows, queries]) {
    for (const r of list) {
      if (!Number.isInteger(r) || r < 0 || r >= n) {
        throw new Error(`nearest neighbours: row index ${r} is outside 0..${n - 1}`);
      }
    }
  }
}

/** The order in which rows are laid out and queries searched. */
interface Layout {
  /**
   * Positions into `rows`: first those holding a query (one each), then the others. A position's
   * index in this list is where it sits in the centred matrix.
   */
  order: number[];
  /** Distinct queries: those among `rows` first, in `order`, then the others. */
  searched: number[];
  /** How many of `searched` are among `rows`; they sit at matrix positions 0 .. sharedCount. */
  sharedCount: number;
  searchedIndex: Map<number, number>;
}

function arrange(rows: readonly number[], queries: readonly number[]): Layout {
  const wanted = new Set(queries);
  const first = new Map<number, number>();
  rows.forEach((r, p) => {
    if (wanted.has(r) && !first.has(r)) first.set(r, p);
  });
  const sharedPositions = [...first.values()];
  const taken = new Set(sharedPositions);
  const order = [...sharedPositions, ...rows.keys()].filter(
    (p, i) => i < sharedPositions.length || !taken.has(p),
  );
  const searched = [
    ...sharedPositions.map((p) => rows[p]),
    ...[...wanted].filter((q) => !first.has(q)),
  ];
  return {
    order,
    searched,
    sharedCount: sharedPositions.length,
    searchedIndex: new Map(searched.map((q, i) => [q, i])),
  };
}

/** Mean of the given rows, `[dim]` float64; centring on it keeps the float32 products accurate. */
function columnMean(x: Float32Array, dim: number, rows: readonly number[]): Float64Array {
  const mean = new Float64Array(dim);
  for (const r of rows) {
    const base = r * dim;
    for (let d = 0; d < dim; d++) mean[d] += x[base + d];
  }
  for (let d = 0; d < dim; d++) mean[d] /= rows.length;
  return mean;
}

/** The given rows minus `mean`, `[rows.length, dim]` float32. */
function gather(
  x: Float32Array,
  dim: number,
  rows: ArrayLike<number>,
  mean: Float64Array,
): Float32Array {
  const out = new Float32Array(rows.length * dim);
  for (let i = 0; i < rows.length; i++) {
    const from = rows[i] * dim;
    const to = i * dim;
    for (let d = 0; d < dim; d++) out[to + d] = x[from + d] - mean[d];
  }
  return out;
}

/** |b|^2 of each row of `[rows, dim]` values, float32. */
function rowSquares(values: Float32Array, dim: number): Float32Array {
  const out = new Float32Array(values.length / dim);
  for (let i = 0; i < out.length; i++) {
    let sum = 0;
    for (let d = i * dim; d < (i + 1) * dim; d++) sum += values[d] * values[d];
    out[i] = sum;
  }
  return out;
}

/**
 * 2ab for the centred query rows `a` and the candidate rows from `from` on: `[a rows, n - from]`
 * float32, row-major. The caller disposes it.
 */
function productWith(a: Float32Array, twice: tf.Tensor2D, from: number): tf.Tensor {
  const [n, dim] = twice.shape;
  return tf.tidy(() => {
    const left = tf.tensor2d(a, [a.length / dim, dim]);
    const right = from === 0 ? twice : tf.slice(twice, [from, 0], [n - from, dim]);
    return tf.matMul(left, right, false, true);
  });
}

/** Slack that keeps the float32 pre-selection from dropping a candidate by rounding. */
function slackFor(squares: Float32Array): number {
  let largest = 0;
  for (const s of squares) largest = Math.max(largest, s);
  return largest * 2 ** -14;
}

/**
 * Offers row i of `products` (matrix columns `from` .. n) to query `first + i`. |a|^2 is the
 * same for every candidate of one query, so ranking by 2ab - |b|^2 (largest first) is ranking
 * by |a|^2 + |b|^2 - 2ab (smallest first). The scan skips the columns that cannot reach the
 * query's lowest kept score; most do, once a few rows have been seen.
 */
function offerRows(
  best: BestScores,
  arrays: ScanArrays,
  products: Float32Array,
  squares: Float32Array,
  span: { first: number; count: number; from: number },
): void {
  const { first, count, from } = span;
  const width = products.length / count;
  for (let i = 0; i < count; i++) {
    const query = first + i;
    let floor = best.floor(query);
    for (let j = 0; ; j++) {
      j += arrays.firstAtLeast(products, i * width + j, squares, from + j, width - j, floor);
      if (j >= width) break;
      const score = Math.fround(products[i * width + j] - squares[from + j]);
      if (score >= floor) floor = best.offer(query, from + j, score);
    }
  }
}

/**
 * The other half of a chunk's product: column c of the later queries (end .. shared) holds
 * 2ab between that query and each row of the chunk (start .. end), offered to that query.
 * `floors` holds each query's lowest kept score less the slack, for the scan.
 */
function offerColumns(
  best: BestScores,
  arrays: ScanArrays,
  products: Float32Array,
  [squares, floors]: Float32Array[],
  span: { start: number; end: number; shared: number },
): void {
  const { start, end, shared } = span;
  const width = products.length / (end - start);
  const count = shared - end;
  for (let i = 0; i < end - start; i++) {
    const row = start + i;
    const at = i * width + (end - start);
    for (let j = 0; ; j++) {
      j += arrays.firstAtLeast(products, at + j, floors, end + j, count - j, squares[row], 0);
      if (j >= count) break;
      const query = end + j;
      const score = Math.fround(products[at + j] - squares[row]);
      if (score >= best.floor(query)) {
        floors[query] = best.offer(query, row, score) - arrays.slack;
      }
    }
  }
}

/**
 * The float32 arrays a search scans, and the scan: on the wasm backend the arrays live in its
 * memory (as tensors owned here) and a SIMD loop finds the next qualifying value; elsewhere
 * plain arrays and a JavaScript loop.
 */
class ScanArrays {
  private readonly kernels: SimdKernels | undefined;
  private readonly tensors: tf.Tensor[];

  constructor(
    private readonly plain: Float32Array[],
    readonly slack: number,
  ) {
    this.kernels = tf.getBackend() === 'wasm' ? simdKernels(wasm()) : undefined;
    this.tensors = this.kernels === undefined ? [] : plain.map((a) => tf.tensor1d(a));
  }

  /**
   * Runs `visit` on the values of `products` and on views of the arrays, then disposes
   * `products`. Views into the wasm memory last until its next allocation, hence the callback.
   */
  scan(products: tf.Tensor, visit: (values: Float32Array, arrays: Float32Array[]) => void): void {
    try {
      if (this.kernels === undefined) {
        visit(products.dataSync() as Float32Array, this.plain);
        return;
      }
      const view = (t: tf.Tensor) => wasm().typedArrayFromHeap(t) as Float32Array;
      visit(view(products), this.tensors.map(view));
    } finally {
      products.dispose();
    }
  }

  /**
   * How far past `aAt` the first j lies with a[aAt + j] - b[bAt + j] >= t - slack (`count` when
   * none does). With the slack it may stop early, never late: callers check the exact score.
   */
  firstAtLeast(
    a: Float32Array,
    aAt: number,
    b: Float32Array,
    bAt: number,
    count: number,
    t: number,
    slack = this.slack,
  ): number {
    const limit = t - slack;
    if (this.kernels !== undefined) {
      return this.kernels.firstAtLeast(
        a.byteOffset + 4 * aAt,
        b.byteOffset + 4 * bAt,
        count,
        limit,
      );
    }
    for (let j = 0; j < count; j++) if (a[aAt + j] - b[bAt + j] >= limit) return j;
    return count;
  }

  dispose(): void {
    for (const t of this.tensors) t.dispose();
  }
}

function wasm(): BackendWasm {
  return tf.backend() as BackendWasm;
}

/**
 * The `size` largest scores offered to each query, with their matrix positions; equal scores
 * keep the lower row index, as the final ranking does.
 */
class BestScores {
  private readonly positions: Int32Array;
  private readonly scores: Float64Array;
  private readonly counts: Int32Array;
  /** Per query: the lowest score kept once its list is full, -Infinity before. */
  private readonly floors: Float64Array;

  constructor(
    queries: number,
    private readonly size: number,
    private readonly rowOf: Int32Array,
  ) {
    this.positions = new Int32Array(queries * size);
    this.scores = new Float64Array(queries * size);
    this.counts = new Int32Array(queries);
    this.floors = new Float64Array(queries).fill(-Infinity);
  }

  floor(query: number): number {
    return this.floors[query];
  }

  /** Keeps `position` if it ranks among the best so far; returns the query's new floor. */
  offer(query: number, position: number, score: number): number {
    const base = query * this.size;
    const count = this.counts[query];
    const row = this.rowOf[position];
    const before = (i: number) =>
      this.scores[base + i] > score ||
      (this.scores[base + i] === score && this.rowOf[this.positions[base + i]] < row);
    if (count === this.size && before(count - 1)) return this.floors[query];

    let i = Math.min(count, this.size - 1);
    for (; i > 0 && !before(i - 1); i--) {
      this.positions[base + i] = this.positions[base + i - 1];
      this.scores[base + i] = this.scores[base + i - 1];
    }
    this.positions[base + i] = position;
    this.scores[base + i] = score;
    this.counts[query] = Math.min(count + 1, this.size);
    if (this.counts[query] === this.size) this.floors[query] = this.scores[base + this.size - 1];
    return this.floors[query];
  }

  positionsOf(query: number): Int32Array {
    const base = query * this.size;
    return this.positions.subarray(base, base + this.counts[query]);
  }
}

/** The `k` candidates nearest to `query` by float64 distance, lowest index first on ties. */
function rerank(
  x: Float32Array,
  dim: number,
  query: number,
  candidates: number[],
  k: number,
): Int32Array {
  const q = query * dim;
  const scored: { row: number; distance: number }[] = [];
  for (const c of candidates) {
    if (c === query) continue;
    const base = c * dim;
    let sum = 0;
    for (let d = 0; d < dim; d++) {
      const diff = x[base + d] - x[q + d];
      sum += diff * diff;
    }
    scored.push({ row: c, distance: sum });
  }
  scored.sort((a, b) => a.distance - b.distance || a.row - b.row);
  return Int32Array.from(scored.slice(0, k), (s) => s.row);
}
