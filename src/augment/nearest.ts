import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { availableParallelism } from 'os';
import { setImmediate as nextTurn } from 'timers/promises';
import { SimdKernels, addressOf, offerRowsScratch, simdKernels } from '../train/simd-kernels';
import { Worker } from 'worker_threads';
import { join } from 'path';

/** Bytes one `[queries, rows]` float32 score matrix of a chunk may take. */
const MATRIX_BYTES = 64 * 1024 * 1024;

/**
 * Most queries per chunk. A small search runs in one chunk, so that every query sees every row in
 * one pass over its row of the product.
 */
const MAX_CHUNK = 4096;

/**
 * Floating-point operations of one chunk's product: about 50 ms on one core, the longest the
 * event loop waits between chunks. The float64 re-ranking, some 40 times slower per operation,
 * hands the loop back as often.
 */
const CHUNK_FLOPS = 2e9;

/** Products of fewer operations run on one thread; a worker thread takes about 0.1 s to start. */
const PARALLEL_FLOPS = 1e10;

export interface NearestOptions {
  /** Upper bound for the intermediate `[chunk, rows]` matrices of one chunk, in bytes. */
  maxMatrixBytes?: number;
  /**
   * Threads that compute the products: `auto` (default) adds a worker thread on the
   * WebAssembly backend when the machine has a second core and the search is large; 2 always
   * adds one; 1 never does. tfjs-node runs its products on every core by itself.
   */
  threads?: 'auto' | 1 | 2;
}

/**
 * Exact k nearest neighbours by Euclidean distance, brute force.
 *
 * `x` is `[n, dim]` float32, row-major. For each index in `queries`, resolves to the indices
 * (into `x`) of its `k` nearest rows among `rows`, nearest first, never the query itself; fewer
 * when `rows` holds fewer others. Equal distances are ordered lowest index first.
 *
 * Embeddings have about a thousand dimensions, where tree indexes visit nearly every point, so the
 * distances are computed as matrix products in TF.js, a chunk of queries at a time so that memory
 * stays bounded, handing the event loop back between chunks. Queries that are among `rows` (as in
 * SMOTE) are placed first, and a chunk's product with the rows after its start also gives the
 * later queries their distances to the chunk's rows: each distance between two queries is
 * computed once, not twice. On WebAssembly, whose products use one core, a worker thread shares
 * the chunks of a large search. The rows are first moved near the origin and scaled by a power
 * of two (see {@link Frame}); candidates are then re-ranked with float64 distances, because the
 * float32 product form loses precision when rows are far from the origin and close to each
 * other. Many rows at one distance keep lowest index first where that distance is exact in
 * float32 (values on a grid); where it is not, more than 2k + 1 of them may come back in another
 * order.
 *
 * (A brute-force search that takes one pair of rows at a time, such as usearch's exact search,
 * ran 2 to 4 times slower than these products for thousands of 1024-value rows; tree indexes
 * such as mnemonist's k-d tree ran 3 times slower even on 22-value rows.)
 *
 * @example
 * // one feature: rows 0..3 hold 0, 1, 2, 10
 * await nearestNeighbours(Float32Array.of(0, 1, 2, 10), 1, [0, 1, 2, 3], [0], 2);
 * // [Int32Array [1, 2]]
 */
export async function nearestNeighbours(
  x: Float32Array,
  dim: number,
  rows: ArrayLike<number>,
  queries: ArrayLike<number>,
  k: number,
  options: NearestOptions = {},
): Promise<Int32Array[]> {
  checkArguments(x, dim, rows, queries, k);
  if (rows.length === 0 || k === 0) return Array.from(queries, () => new Int32Array(0));

  // Twice as many candidates as needed leaves room for float32 rounding to misorder them.
  const fetch = Math.min(rows.length, 2 * k + 1);
  const layout = arrange(rows, queries, x.length / dim);
  const n = layout.order.length;
  const shared = layout.sharedCount;
  const matrixRows = (options.maxMatrixBytes ?? MATRIX_BYTES) / 4 / 2 / n;
  const byWork = CHUNK_FLOPS / (2 * n * dim);
  const chunk = Math.max(1, Math.floor(Math.min(MAX_CHUNK, matrixRows, byWork)));
  const helpers = helperCount(options.threads ?? 'auto', productFlops(n, dim, shared));

  const frame = frameOf(x, dim, rows);
  const rowOf = new Int32Array(n);
  for (let i = 0; i < n; i++) rowOf[i] = rows[layout.order[i]];
  // Shared memory lets worker threads read the rows without a copy.
  const centred = gather(x, dim, rowOf, frame, helpers > 0);
  const job: SearchJob = {
    centred,
    dim,
    rowOf,
    fetch,
    chunk,
    shared,
    queries: layout.searched.length,
    next: new Int32Array(new SharedArrayBuffer(4)),
  };
  const theirs = Array.from({ length: helpers }, () =>
    searchInThread(job).catch((err: Error) => err),
  );

  let kept: Kept[];
  const search = new ChunkSearch(job);
  try {
    await search.runShared(true);
    for (let start = shared; start < job.queries; start += chunk) {
      const part = layout.searched.slice(start, start + chunk);
      search.runOthers(start, gather(x, dim, part, frame, false));
      await nextTurn();
    }
    kept = [search.kept(), ...(await Promise.all(theirs))].filter(
      (k): k is Kept => !(k instanceof Error),
    );
  } finally {
    search.dispose();
  }
  if (kept.length < helpers + 1) {
    // A worker failed (no threads, a resource limit) after taking chunks: search again, alone.
    return nearestNeighbours(x, dim, rows, queries, k, { ...options, threads: 1 });
  }

  const merged = merge(kept);
  const slice = Math.max(1, Math.floor(CHUNK_FLOPS / 40 / (merged.fetch * dim)));
  const candidates = { searched: layout.searched, shared, rowOf, kept: merged, slice };
  const nearest =
    (await rankInWasm(x, dim, k, candidates)) ?? (await rankInJs(x, dim, k, candidates));
  const out = new Array<Int32Array>(queries.length);
  for (let i = 0; i < queries.length; i++) out[i] = nearest[layout.searchedIndex[queries[i]]];
  return out;
}

/** What the final ranking starts from: the queries and the candidates the threads kept. */
interface Candidates {
  /** Row index of each query, in search order (see {@link Layout}). */
  searched: readonly number[];
  /** How many of `searched` are among the rows, at matrix positions 0 .. shared. */
  shared: number;
  /** Row index of each matrix position. */
  rowOf: Int32Array;
  kept: Kept;
  /** Queries ranked between two turns of the event loop. */
  slice: number;
}

/** The lists of several threads as one, each query's candidates side by side. */
function merge(kept: readonly Kept[]): Kept {
  if (kept.length === 1) return kept[0];
  const fetch = kept.reduce((sum, list) => sum + list.fetch, 0);
  const queries = kept[0].counts.length;
  const positions = new Int32Array(queries * fetch);
  const counts = new Int32Array(queries);
  for (let q = 0; q < queries; q++) {
    for (const list of kept) {
      const from = q * list.fetch;
      positions.set(list.positions.subarray(from, from + list.counts[q]), q * fetch + counts[q]);
      counts[q] += list.counts[q];
    }
  }
  return { fetch, positions, counts };
}

/**
 * The `k` nearest rows of every query by float64 distance among its candidates, ranked in
 * WebAssembly; undefined off the wasm backend, or where the values of the rows and queries would
 * take more than a chunk's matrices. Hands the event loop back between slices of queries.
 */
async function rankInWasm(
  x: Float32Array,
  dim: number,
  k: number,
  { searched, shared, rowOf, kept, slice }: Candidates,
): Promise<Int32Array[] | undefined> {
  const kernels = tf.getBackend() === 'wasm' ? simdKernels(wasm()) : undefined;
  const n = rowOf.length;
  const others = searched.slice(shared);
  if (kernels === undefined || (n + others.length) * dim * 4 > MATRIX_BYTES) return undefined;
  const values = new Float32Array((n + others.length) * dim);
  for (let at = 0; at < n + others.length; at++) {
    const r = at < n ? rowOf[at] : others[at - n];
    values.set(x.subarray(r * dim, (r + 1) * dim), at * dim);
  }
  const queries = searched.length;
  const tensors = [
    tf.tensor1d(values),
    tf.tensor1d(rowOf, 'int32'),
    tf.tensor1d(kept.positions, 'int32'),
    tf.tensor1d(kept.counts, 'int32'),
    tf.zeros([queries * k], 'int32'),
    tf.zeros([queries], 'int32'),
    tf.zeros([2 * k]),
  ];
  try {
    const [at, rows, positions, counts, out, found, distances] = tensors.map((t) =>
      addressOf(wasm(), t.dataId),
    );
    for (let q = 0; q < queries; q += slice) {
      const to = Math.min(queries, q + slice);
      kernels.rerank(
        at,
        dim,
        rows,
        n,
        shared,
        positions,
        counts,
        kept.fetch,
        k,
        q,
        to,
        out,
        found,
        distances,
      );
      if (to < queries) await nextTurn();
    }
    const nearest = wasm().typedArrayFromHeap(tensors[4]) as Int32Array;
    const count = wasm().typedArrayFromHeap(tensors[5]) as Int32Array;
    const lists = new Array<Int32Array>(queries);
    for (let q = 0; q < queries; q++) lists[q] = nearest.slice(q * k, q * k + count[q]);
    return lists;
  } finally {
    for (const t of tensors) t.dispose();
  }
}

/** As {@link rankInWasm}, in JavaScript, query by query (see Reranking). */
async function rankInJs(
  x: Float32Array,
  dim: number,
  k: number,
  { searched, rowOf, kept, slice }: Candidates,
): Promise<Int32Array[]> {
  const nearest: Int32Array[] = [];
  const ranking = new Reranking(x, dim, k, rowOf);
  for (let i = 0; i < searched.length; i++) {
    nearest.push(ranking.nearest(searched[i], kept, i));
    if ((i + 1) % slice === 0) await nextTurn();
  }
  return nearest;
}

/** Operations of a search's products: each shared query i against the rows from i on. */
function productFlops(n: number, dim: number, shared: number): number {
  return 2 * dim * (shared * n - (shared * (shared - 1)) / 2);
}

/** Worker threads to add to this one. */
function helperCount(threads: NearestOptions['threads'], flops: number): number {
  if (threads === 1) return 0;
  if (threads === 2) return 1;
  const wanted =
    availableParallelism() > 1 && tf.getBackend() === 'wasm' && flops >= PARALLEL_FLOPS;
  return wanted ? 1 : 0;
}

/**
 * What the threads of a search share: the centred rows in matrix order, and where the next chunk
 * of shared queries to compute starts, which each thread takes in turn.
 */
export interface SearchJob {
  /** `[n, dim]` float32: the rows, in matrix order, moved and scaled (see {@link Frame}). */
  centred: Float32Array;
  dim: number;
  /** Row index (into the caller's `x`) of each matrix position. */
  rowOf: Int32Array;
  /** Candidates kept per query. */
  fetch: number;
  /** Queries per chunk. */
  chunk: number;
  /** Queries among the rows; they sit at matrix positions 0 .. shared. */
  shared: number;
  /** Queries in all, those among the rows first. */
  queries: number;
  /** In shared memory: the first shared query no thread has taken yet. */
  next: Int32Array;
}

/**
 * The candidates one thread (or several, merged) kept: per query, `counts[q]` matrix positions
 * at `positions[q * fetch ..]`.
 */
export interface Kept {
  fetch: number;
  positions: Int32Array;
  counts: Int32Array;
}

/**
 * Runs `job` alongside this thread in the worker thread (nearest-worker), which is started on
 * first use with the same TF.js backend as this thread and ends after a while without work.
 * Rejects when the worker cannot start or fails.
 */
function searchInThread(job: SearchJob): Promise<Kept> {
  helper ??= new Helper();
  return helper.run(job);
}

/** Seconds an idle worker thread waits for the next search before it ends. */
const HELPER_IDLE_SECONDS = 10;

let helper: Helper | undefined;

class Helper {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, [(kept: Kept) => void, (err: Error) => void]>();
  private lastId = 0;
  private idle: NodeJS.Timeout | undefined;

  constructor() {
    const compiled = __filename.endsWith('.js');
    const script = join(__dirname, `nearest-worker.${compiled ? 'js' : 'ts'}`);
    this.worker = new Worker(script, {
      workerData: { backend: tf.getBackend() },
      // Under ts-node (the tests) the worker compiles its TypeScript as this thread does.
      execArgv: compiled ? [] : ['-r', 'ts-node/register/transpile-only'],
    });
    this.worker.on('message', (reply: { id: number; kept?: Kept; error?: string }) => {
      const [resolve, reject] = this.waiting.get(reply.id) ?? [];
      this.waiting.delete(reply.id);
      if (reply.kept !== undefined) resolve?.(reply.kept);
      else reject?.(new Error(`nearest neighbours: worker thread: ${reply.error}`));
      this.restartIdleTimer();
    });
    const fail = (err: Error) => {
      if (helper === this) helper = undefined;
      for (const [, reject] of this.waiting.values()) reject(err);
      this.waiting.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`nearest neighbours: worker ended (${code})`)));
    // An idle worker does not keep the process alive (unref after the listeners, which ref it);
    // one with work does, or a process whose only work left is the worker's would end.
    this.worker.unref();
  }

  run(job: SearchJob): Promise<Kept> {
    clearTimeout(this.idle);
    this.worker.ref();
    const id = ++this.lastId;
    return new Promise<Kept>((resolve, reject) => {
      this.waiting.set(id, [resolve, reject]);
      this.worker.postMessage({ id, job });
    });
  }

  private restartIdleTimer(): void {
    clearTimeout(this.idle);
    if (this.waiting.size > 0) return;
    this.worker.unref();
    this.idle = setTimeout(() => {
      if (helper === this) helper = undefined;
      void this.worker.terminate();
    }, HELPER_IDLE_SECONDS * 1000);
    this.idle.unref();
  }
}

/**
 * One thread's part of a search: the chunks of shared queries it takes, and (in the calling
 * thread) the queries not among the rows. Owns tensors until `dispose`.
 */
export class ChunkSearch {
  private readonly best: BestScores;
  private readonly arrays: SearchArrays<[Float32Array, Float32Array, ...BestScores['lists']]>;

  constructor(private readonly job: SearchJob) {
    const squares = halfSquares(job.centred, job.dim);
    this.best = new BestScores(job.queries, job.fetch, job.rowOf);
    const loose = new Float32Array(job.queries).fill(-Infinity);
    this.arrays = new SearchArrays([squares, loose, ...this.best.lists], slackFor(squares));
  }

  /**
   * Computes chunks of shared queries, taking the next queries no other thread has taken until
   * none is left; hands the event loop back between chunks if `yields`.
   */
  async runShared(yields: boolean): Promise<void> {
    const { centred, dim, chunk, shared, next } = this.job;
    for (;;) {
      const start = Atomics.add(next, 0, chunk);
      if (start >= shared) return;
      const end = Math.min(start + chunk, shared);
      const left = centred.subarray(start * dim, end * dim);
      this.arrays.scan(this.product(left, start), (products, [sq, floors, ...lists]) => {
        this.best.bind(lists);
        this.arrays.offerRows(this.best, products, sq, {
          first: start,
          count: end - start,
          from: start,
        });
        offerColumns(this.best, this.arrays, products, [sq, floors], { start, end, shared });
      });
      if (yields) await nextTurn();
    }
  }

  /** Offers every row to the queries `first` ..  whose centred values are `values`. */
  runOthers(first: number, values: Float32Array): void {
    const count = values.length / this.job.dim;
    this.arrays.scan(this.product(values, 0), (products, [sq, , ...lists]) => {
      this.best.bind(lists);
      this.arrays.offerRows(this.best, products, sq, { first, count, from: 0 });
    });
  }

  /** The candidates kept for every query, copied out. */
  kept(): Kept {
    const [, , ...lists] = this.arrays.views();
    this.best.bind(lists);
    return this.best.kept();
  }

  dispose(): void {
    this.arrays.dispose();
  }

  /**
   * ab for the centred query rows `a` and the rows from `from` on: `[a rows, n - from]` float32,
   * row-major. The caller disposes it.
   */
  private product(a: Float32Array, from: number): tf.Tensor {
    const { centred, dim } = this.job;
    const n = centred.length / dim;
    return tf.tidy(() => {
      const left = tf.tensor2d(a, [a.length / dim, dim]);
      const right = tf.tensor2d(centred.subarray(from * dim), [n - from, dim]);
      return tf.matMul(left, right, false, true);
    });
  }
}

function checkArguments(
  x: Float32Array,
  dim: number,
  rows: ArrayLike<number>,
  queries: ArrayLike<number>,
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
    for (let i = 0; i < list.length; i++) {
      const r = list[i];
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
  order: Int32Array;
  /** Distinct queries: those among `rows` first, in `order`, then the others. */
  searched: number[];
  /** How many of `searched` are among `rows`; they sit at matrix positions 0 .. sharedCount. */
  sharedCount: number;
  /** Per row index of `x`, where it is in `searched` (-1 for rows not searched). */
  searchedIndex: Int32Array;
}

/** Lays out `rows` and `queries`, row indices into `x` of `n` rows (see {@link Layout}). */
function arrange(rows: ArrayLike<number>, queries: ArrayLike<number>, n: number): Layout {
  const wanted = new Int8Array(n);
  for (let i = 0; i < queries.length; i++) wanted[queries[i]] = 1;
  // The first position of each query among the rows; the query is then marked found (2).
  const isShared = new Uint8Array(rows.length);
  const searched: number[] = [];
  for (let p = 0; p < rows.length; p++) {
    if (wanted[rows[p]] === 1) {
      wanted[rows[p]] = 2;
      isShared[p] = 1;
      searched.push(rows[p]);
    }
  }
  const sharedCount = searched.length;
  const order = new Int32Array(rows.length);
  let at = 0;
  for (let p = 0; p < rows.length; p++) if (isShared[p] === 1) order[at++] = p;
  for (let p = 0; p < rows.length; p++) if (isShared[p] === 0) order[at++] = p;
  for (let i = 0; i < queries.length; i++) {
    const q = queries[i];
    if (wanted[q] === 1) {
      wanted[q] = 3;
      searched.push(q);
    }
  }
  const searchedIndex = new Int32Array(n).fill(-1);
  for (let i = 0; i < searched.length; i++) searchedIndex[searched[i]] = i;
  return { order, searched, sharedCount, searchedIndex };
}

/**
 * Where the rows are moved to before the float32 products: `x - offset` times `scale`, per column.
 * The offset is the rows' mean rounded to a multiple of a sixteenth of their spread's power of two,
 * and the scale a power of two that brings the spread near 1. Values on a grid (small integers,
 * say) so stay exact, and equal distances give equal scores; values far from 1 (1e20, 1e-25)
 * neither overflow nor underflow float32. Rows far from the origin and close to each other keep
 * their precision, as centring on the mean gives.
 */
interface Frame {
  offset: Float64Array;
  scale: number;
}

function frameOf(x: Float32Array, dim: number, rows: ArrayLike<number>): Frame {
  const mean = columnMeans(x, dim, rows);
  const spread = largestDeviation(x, dim, rows, mean);
  const exponent = spread > 0 ? Math.floor(Math.log2(spread)) : 0;
  const step = 2 ** (exponent - 4);
  return {
    offset: mean.map((m) => Math.round(m / step) * step),
    scale: 2 ** -exponent,
  };
}

// The two passes of frameOf are functions of their own: each loop is then optimised while it
// runs with what it has seen, not thrown back to the interpreter when the other one starts.

/** The mean of each column over the given rows, float64. */
function columnMeans(x: Float32Array, dim: number, rows: ArrayLike<number>): Float64Array {
  const mean = new Float64Array(dim);
  for (let i = 0; i < rows.length; i++) {
    const base = rows[i] * dim;
    for (let d = 0; d < dim; d++) mean[d] += x[base + d];
  }
  for (let d = 0; d < dim; d++) mean[d] /= rows.length;
  return mean;
}

/** The largest |x - mean| over the given rows and every column. */
function largestDeviation(
  x: Float32Array,
  dim: number,
  rows: ArrayLike<number>,
  mean: Float64Array,
): number {
  let spread = 0;
  for (let i = 0; i < rows.length; i++) {
    const base = rows[i] * dim;
    for (let d = 0; d < dim; d++) spread = Math.max(spread, Math.abs(x[base + d] - mean[d]));
  }
  return spread;
}

/** The given rows in `frame`, `[rows.length, dim]` float32, in shared memory if `shared`. */
function gather(
  x: Float32Array,
  dim: number,
  rows: ArrayLike<number>,
  { offset, scale }: Frame,
  shared: boolean,
): Float32Array {
  const bytes = rows.length * dim * 4;
  const out = new Float32Array(shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes));
  for (let i = 0; i < rows.length; i++) {
    const from = rows[i] * dim;
    const to = i * dim;
    for (let d = 0; d < dim; d++) out[to + d] = (x[from + d] - offset[d]) * scale;
  }
  return out;
}

/** |b|^2 / 2 of each row of `[rows, dim]` values, float32. */
function halfSquares(values: Float32Array, dim: number): Float32Array {
  const out = new Float32Array(values.length / dim);
  for (let i = 0; i < out.length; i++) {
    let sum = 0;
    for (let d = i * dim; d < (i + 1) * dim; d++) sum += values[d] * values[d];
    out[i] = sum / 2;
  }
  return out;
}

/** Slack that keeps the float32 pre-selection from dropping a candidate by rounding. */
function slackFor(halfSquares: Float32Array): number {
  let largest = 0;
  for (const s of halfSquares) largest = Math.max(largest, s);
  return largest * 2 ** -14;
}

/** Which queries a chunk's product rows belong to and where its columns start. */
interface RowSpan {
  /** Query (and matrix position, for queries among the rows) of the product's first row. */
  first: number;
  /** Rows in the product. */
  count: number;
  /** Matrix position of the product's first column. */
  from: number;
}

/**
 * Offers row i of `products` (matrix columns `from` .. n) to query `first + i`, in JavaScript.
 * |a|^2 is the same for every candidate of one query, so ranking by ab - |b|^2 / 2 (largest
 * first) is ranking by |a|^2 + |b|^2 - 2ab (smallest first); `squares` holds |b|^2 / 2. The
 * scan skips the columns that cannot reach the query's lowest kept score; most do, once a few
 * rows have been seen.
 */
function offerRowsPlain(
  best: BestScores,
  arrays: SearchArrays,
  products: Float32Array,
  squares: Float32Array,
  span: RowSpan,
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
 * ab between that query and each row of the chunk (start .. end), offered to that query.
 * `floors` holds each query's lowest kept score less the slack, for the scan.
 */
function offerColumns(
  best: BestScores,
  arrays: SearchArrays,
  products: Float32Array,
  [squares, floors]: Float32Array[],
  span: { start: number; end: number; shared: number },
): void {
  const { start, end, shared } = span;
  const count = shared - end;
  if (count === 0) return;
  const width = products.length / (end - start);
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

/** An array a search works on: float32 values or int32 indices and counts. */
type SearchArray = Float32Array | Int32Array;

/**
 * The arrays a search works on, and the loops over them: on the wasm backend the arrays live in
 * its memory (as tensors owned here) and SIMD loops scan them and keep the best candidates;
 * elsewhere plain arrays and JavaScript loops.
 */
class SearchArrays<T extends SearchArray[] = SearchArray[]> {
  private readonly kernels: SimdKernels | undefined;
  private readonly tensors: tf.Tensor[];

  constructor(
    private readonly plain: T,
    readonly slack: number,
  ) {
    this.kernels = tf.getBackend() === 'wasm' ? simdKernels(wasm()) : undefined;
    this.tensors =
      this.kernels === undefined
        ? []
        : plain.map((a) => tf.tensor1d(a, a instanceof Int32Array ? 'int32' : 'float32'));
  }

  /** The arrays, in the order given; on wasm, views valid until the backend's next allocation. */
  views(): T {
    if (this.kernels === undefined) return this.plain;
    return this.tensors.map((t) => wasm().typedArrayFromHeap(t)) as T;
  }

  /**
   * Runs `visit` on the values of `products` and on the arrays' views, then disposes `products`.
   */
  scan(products: tf.Tensor, visit: (values: Float32Array, arrays: T) => void): void {
    try {
      const values =
        this.kernels === undefined
          ? (products.dataSync() as Float32Array)
          : (wasm().typedArrayFromHeap(products) as Float32Array);
      visit(values, this.views());
    } finally {
      products.dispose();
    }
  }

  /** Offers each row of `products` to its query (see offerRowsPlain), on wasm in one SIMD call. */
  offerRows(best: BestScores, products: Float32Array, squares: Float32Array, span: RowSpan): void {
    if (this.kernels === undefined) {
      offerRowsPlain(best, this, products, squares, span);
      return;
    }
    const { first, count, from } = span;
    const [scores, positions, kept, rowOf, scratch] = best.lists;
    this.kernels.offerRows(
      products.byteOffset,
      squares.byteOffset,
      products.length / count,
      count,
      from,
      first,
      best.size,
      scores.byteOffset,
      positions.byteOffset,
      kept.byteOffset,
      rowOf.byteOffset,
      scratch.byteOffset,
    );
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
 * keep the lower row index, as the final ranking does. Its arrays (`lists`) may be moved, as on
 * the wasm backend into its memory: `bind` points it at their current place.
 */
class BestScores {
  /** Per query, `size` float32 scores, largest first. */
  private scores: Float32Array;
  /** Per query, the matrix positions of those scores. */
  private positions: Int32Array;
  /** Per query, how many entries its list holds. */
  private counts: Int32Array;
  /** Row index of each matrix position. */
  private rowOf: Int32Array;
  /** Room for the SIMD loops: a list of `size` and the maxima of blocks (offerRowsScratch). */
  private scratch: Float32Array;

  constructor(
    queries: number,
    readonly size: number,
    rowOf: Int32Array,
  ) {
    this.scores = new Float32Array(queries * size);
    this.positions = new Int32Array(queries * size);
    this.counts = new Int32Array(queries);
    this.rowOf = rowOf;
    this.scratch = new Float32Array(offerRowsScratch(size, rowOf.length));
  }

  /** scores, positions, counts, rowOf and scratch, where they are now. */
  get lists(): [Float32Array, Int32Array, Int32Array, Int32Array, Float32Array] {
    return [this.scores, this.positions, this.counts, this.rowOf, this.scratch];
  }

  bind(lists: BestScores['lists']): void {
    [this.scores, this.positions, this.counts, this.rowOf, this.scratch] = lists;
  }

  /** The lowest score the query's list keeps, -Infinity while it has room. */
  floor(query: number): number {
    const { size } = this;
    return this.counts[query] === size ? this.scores[query * size + size - 1] : -Infinity;
  }

  /** Keeps `position` if it ranks among the best so far; returns the query's new floor. */
  offer(query: number, position: number, score: number): number {
    const { positions, scores, rowOf, size } = this;
    const base = query * size;
    const count = this.counts[query];
    const row = rowOf[position];
    let i = count;
    if (count === size) {
      const last = base + size - 1;
      if (scores[last] > score || (scores[last] === score && rowOf[positions[last]] < row)) {
        return scores[last];
      }
      i = size - 1;
    }
    for (; i > 0; i--) {
      const at = base + i - 1;
      if (scores[at] > score || (scores[at] === score && rowOf[positions[at]] < row)) break;
      positions[at + 1] = positions[at];
      scores[at + 1] = scores[at];
    }
    positions[base + i] = position;
    scores[base + i] = score;
    if (count < size) this.counts[query] = count + 1;
    return this.floor(query);
  }

  /** The candidates kept for every query, copied out. */
  kept(): Kept {
    return { fetch: this.size, positions: this.positions.slice(), counts: this.counts.slice() };
  }
}

/**
 * The `k` candidates nearest to a query by float64 distance, lowest index first on ties, the
 * query itself never one: the candidates are the rows every thread kept for it (each pair of rows
 * was offered in one thread only). Reuses its arrays from query to query.
 */
class Reranking {
  private readonly rows: Int32Array;
  private readonly distances: Float64Array;

  constructor(
    private readonly x: Float32Array,
    private readonly dim: number,
    private readonly k: number,
    private readonly rowOf: Int32Array,
  ) {
    this.rows = new Int32Array(k);
    this.distances = new Float64Array(k);
  }

  /** The nearest rows to `query`, whose candidates are entry `i` of the kept lists. */
  nearest(query: number, kept: Kept, i: number): Int32Array {
    let count = 0;
    const start = i * kept.fetch;
    for (let j = start; j < start + kept.counts[i]; j++) {
      count = this.offer(query, this.rowOf[kept.positions[j]], count);
    }
    return this.rows.slice(0, count);
  }

  /** Places candidate `c` among the `count` best so far; returns the new count. */
  private offer(query: number, c: number, count: number): number {
    const { x, dim, k, rows, distances } = this;
    if (c === query) return count;
    const q = query * dim;
    const base = c * dim;
    let sum = 0;
    for (let d = 0; d < dim; d++) {
      const diff = x[base + d] - x[q + d];
      sum += diff * diff;
    }
    let at = count;
    if (count === k) {
      if (distances[k - 1] < sum || (distances[k - 1] === sum && rows[k - 1] < c)) return count;
      at = k - 1;
    }
    for (
      ;
      at > 0 && (distances[at - 1] > sum || (distances[at - 1] === sum && rows[at - 1] > c));
      at--
    ) {
      distances[at] = distances[at - 1];
      rows[at] = rows[at - 1];
    }
    distances[at] = sum;
    rows[at] = c;
    return Math.min(count + 1, k);
  }
}
