import * as tf from '@tensorflow/tfjs';

/** Bytes one `[queries, rows]` float32 score matrix of a chunk may take. */
const MATRIX_BYTES = 64 * 1024 * 1024;

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
 * stays bounded. Candidates are then re-ranked with float64 distances, because the float32 product
 * form loses precision when rows are far from the origin and close to each other.
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
  const mean = columnMean(x, dim, rows);
  const budget = (options.maxMatrixBytes ?? MATRIX_BYTES) / 4 / 2;
  const chunk = Math.max(1, Math.floor(budget / rows.length));
  const { twice, squares } = candidateTensors(x, dim, rows, mean);

  try {
    const out: Int32Array[] = [];
    for (let start = 0; start < queries.length; start += chunk) {
      const part = queries.slice(start, start + chunk);
      const found = closestCandidates(
        gather(x, dim, part, mean),
        part.length,
        twice,
        squares,
        fetch,
      );
      part.forEach((query, i) => {
        const candidates = Array.from(found.subarray(i * fetch, (i + 1) * fetch), (c) => rows[c]);
        out.push(rerank(x, dim, query, candidates, k));
      });
    }
    return out;
  } finally {
    twice.dispose();
    squares.dispose();
  }
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
  for (const r of [...rows, ...queries]) {
    if (!Number.isInteger(r) || r < 0 || r >= n) {
      throw new Error(`nearest neighbours: row index ${r} is outside 0..${n - 1}`);
    }
  }
}

/** Mean of the given rows, `[dim]` float64; centring on it keeps the float32 products accurate. */
function columnMean(x: Float32Array, dim: number, rows: readonly number[]): Float64Array {
  const mean = new Float64Array(dim);
  for (const r of rows) for (let d = 0; d < dim; d++) mean[d] += x[r * dim + d];
  for (let d = 0; d < dim; d++) mean[d] /= rows.length;
  return mean;
}

/** The given rows minus `mean`, `[rows.length, dim]` float32. */
function gather(
  x: Float32Array,
  dim: number,
  rows: readonly number[],
  mean: Float64Array,
): Float32Array {
  const out = new Float32Array(rows.length * dim);
  rows.forEach((r, i) => {
    for (let d = 0; d < dim; d++) out[i * dim + d] = x[r * dim + d] - mean[d];
  });
  return out;
}

/** `2b` as `[m, dim]` and `|b|^2` as `[1, m]` for the centred candidate rows b. */
function candidateTensors(
  x: Float32Array,
  dim: number,
  rows: readonly number[],
  mean: Float64Array,
) {
  const centred = gather(x, dim, rows, mean);
  const squares = new Float32Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    let sum = 0;
    for (let d = 0; d < dim; d++) sum += centred[i * dim + d] ** 2;
    squares[i] = sum;
  }
  for (let i = 0; i < centred.length; i++) centred[i] *= 2;
  return {
    twice: tf.tensor2d(centred, [rows.length, dim]),
    squares: tf.tensor2d(squares, [1, rows.length]),
  };
}

/**
 * Positions (into the candidate rows) of the `fetch` closest candidates of each query,
 * `[queries, fetch]` int32. |a|^2 is the same for every candidate of one query, so ranking by
 * 2ab - |b|^2 (largest first) is ranking by |a|^2 + |b|^2 - 2ab (smallest first).
 */
function closestCandidates(
  queries: Float32Array,
  count: number,
  twice: tf.Tensor2D,
  squares: tf.Tensor2D,
  fetch: number,
): Int32Array {
  const indices = tf.tidy(() => {
    const a = tf.tensor2d(queries, [count, queries.length / count]);
    const scores = tf.sub(tf.matMul(a, twice, false, true), squares);
    return tf.topk(scores, fetch).indices;
  });
  try {
    return Int32Array.from(indices.dataSync());
  } finally {
    indices.dispose();
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
  const scored = candidates
    .filter((c) => c !== query)
    .map((c) => {
      let sum = 0;
      for (let d = 0; d < dim; d++) sum += (x[c * dim + d] - x[query * dim + d]) ** 2;
      return { row: c, distance: sum };
    });
  scored.sort((a, b) => a.distance - b.distance || a.row - b.row);
  return Int32Array.from(scored.slice(0, k), (s) => s.row);
}
