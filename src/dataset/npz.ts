import { setImmediate as nextTurn } from 'node:timers/promises';
import { endianness } from 'node:os';
import { decodeUtf32le, PickleRefusedError, unpickleStringArray } from './pickle';
import { ArchiveError, HEAD_BYTES, readMembers } from './zip';

/**
 * The arrays of a BirdNET-Analyzer training cache, as float32 and row-major.
 *
 * Flags stored beside them (`binary_classification`, `multi_label`) are not read: the labels and
 * the values of `yTrain` say the same.
 */
export interface TrainingCache {
  /** `[rowsTrain, dim]` float32 embeddings. */
  xTrain: Float32Array;
  /** `[rowsTrain, classes]` float32, values -1 / 0 / 1 as stored. */
  yTrain: Float32Array;
  /** `[rowsTest, dim]` float32; only when the cache holds a non-empty test set (2.x). */
  xTest?: Float32Array;
  /** `[rowsTest, classes]` float32; present exactly when `xTest` is. */
  yTest?: Float32Array;
  /** Values per embedding. */
  dim: number;
  /** Class names in model output order, as stored in the cache. */
  labels: string[];
}

/** One `.npy` member of the archive, its payload not yet converted. */
interface NpyArray {
  /** Member name without `.npy`, e.g. `x_train`. */
  readonly field: string;
  readonly kind: string;
  /** Bytes per item. */
  readonly size: number;
  readonly descr: string;
  readonly shape: readonly number[];
  readonly count: number;
  readonly data: Uint8Array;
}

interface Matrix {
  readonly values: Float32Array;
  readonly rows: number;
  readonly cols: number;
}

const FIELDS = ['x_train', 'y_train', 'x_test', 'y_test', 'labels'] as const;
type Field = (typeof FIELDS)[number];

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

const NUMERIC_SIZES: Readonly<Record<string, readonly number[]>> = {
  f: [4, 8],
  i: [1, 2, 4, 8],
  u: [1, 2, 4, 8],
  b: [1],
};

/**
 * Reads a training cache written by BirdNET-Analyzer: 2.x (`np.savez`, test arrays, labels as a
 * pickled object array or plain strings) or 1.5 (`np.savez_compressed`, string labels, no test
 * arrays).
 *
 * Pickled labels go through a restricted reader that accepts an array of strings and nothing that
 * could run code; numbers of any float, int or bool dtype become float32.
 *
 * @param path the `.npz` file
 * @throws Error naming the file and the array at fault, and what was expected
 */
export async function readTrainingCache(path: string): Promise<TrainingCache> {
  const arrays = await readArchive(path);
  const fail = (message: string): Error => new Error(`training cache ${path}: ${message}`);
  const required = (field: Field, what: string): NpyArray => {
    const array = arrays.get(field);
    if (array === undefined) throw fail(`${field} is missing; expected ${what}`);
    return array;
  };

  const labels = readLabels(required('labels', 'the class names'), path, fail);
  const xTrain = await matrix(required('x_train', 'a [rows, dim] array of embeddings'), fail);
  const yTrain = await labelMatrix(
    required('y_train', 'a [rows, classes] array'),
    labels.length,
    fail,
  );
  if (xTrain.rows === 0) throw fail('x_train has no rows; expected at least one embedding');
  if (xTrain.cols === 0) throw fail('x_train has rows of 0 values; expected embeddings');
  checkPair(xTrain, yTrain, 'x_train', 'y_train', labels.length, fail);

  const test = await readTestSet(arrays, xTrain.cols, labels.length, fail);
  return { xTrain: xTrain.values, yTrain: yTrain.values, ...test, dim: xTrain.cols, labels };
}

/** `x_test` and `y_test` when both hold rows; 2.x writes them empty when there is no test set. */
async function readTestSet(
  arrays: Map<Field, NpyArray>,
  dim: number,
  classes: number,
  fail: Fail,
): Promise<Pick<TrainingCache, 'xTest' | 'yTest'>> {
  const xArray = arrays.get('x_test');
  const yArray = arrays.get('y_test');
  const hasX = xArray !== undefined && xArray.count > 0;
  const hasY = yArray !== undefined && yArray.count > 0;
  if (!hasX && !hasY) return {};
  if (!hasX || !hasY) {
    const [present, absent] = hasX ? ['x_test', 'y_test'] : ['y_test', 'x_test'];
    throw fail(`${present} holds values but ${absent} is missing or empty; expected both or none`);
  }

  const xTest = await matrix(xArray, fail);
  const yTest = await labelMatrix(yArray, classes, fail);
  if (xTest.cols !== dim) {
    throw fail(`x_test has ${xTest.cols} values per row but x_train has ${dim}`);
  }
  checkPair(xTest, yTest, 'x_test', 'y_test', classes, fail);
  return { xTest: xTest.values, yTest: yTest.values };
}

type Fail = (message: string) => Error;

/** The most bytes a pickled array of class names may take. */
const MAX_PICKLE_BYTES = 64 * 1024 * 1024;

/**
 * Unzips the `.npy` members this reader needs (stored or deflated) and parses their headers; a
 * member whose size is not what its header needs is refused before it is unzipped (see
 * readMembers).
 */
async function readArchive(path: string): Promise<Map<Field, NpyArray>> {
  const names = new Map<string, Field>(FIELDS.map((field) => [`${field}.npy`, field]));
  let members: Map<string, Uint8Array>;
  try {
    members = await readMembers(path, new Set(names.keys()), {
      check: (name, head, size) => checkSize(head, size, names.get(name)!, path),
    });
  } catch (err) {
    if (err instanceof ArchiveError) {
      throw new Error(`training cache ${path}: not a readable .npz (zip) archive: ${err.message}`);
    }
    // The file system's errors carry a code such as ENOENT.
    if (typeof (err as NodeJS.ErrnoException).code === 'string') {
      throw new Error(`training cache ${path}: cannot read it (${(err as Error).message})`);
    }
    throw err;
  }
  const arrays = new Map<Field, NpyArray>();
  for (const [name, bytes] of members) {
    const field = names.get(name)!;
    arrays.set(field, parseNpy(bytes, field, path));
  }
  return arrays;
}

/**
 * Refuses a member whose size (what the zip records) is not what its `.npy` header says the array
 * takes, from the header alone: a short one would be cut, and bytes after the array are none of
 * numpy's.
 */
function checkSize(head: Uint8Array, size: number, field: Field, path: string): void {
  const fail = (message: string): Error => new Error(`training cache ${path}: ${field} ${message}`);
  const header = parseHeader(head, field, path, size > head.length);
  if (header.kind === 'O') {
    if (size > MAX_PICKLE_BYTES) {
      throw fail(`is a pickled array of ${size} bytes; expected a list of class names`);
    }
    return;
  }
  const needed = header.count * header.size;
  const has = size - header.start;
  if (has < needed) throw fail(`is truncated: ${header.what} needs ${needed} bytes, has ${has}`);
  if (has > needed) {
    throw fail(`holds ${has - needed} bytes after its array (${header.what}); expected none`);
  }
}

/** What an `.npy` header says, and where its payload starts. */
interface NpyHeader {
  kind: string;
  /** Bytes per item. */
  size: number;
  descr: string;
  shape: number[];
  count: number;
  /** Byte offset of the payload. */
  start: number;
  /** The shape and dtype, as errors name them: `(3, 2) of <f4`. */
  what: string;
}

/**
 * Parses an `.npy` header (versions 1 to 3) at the start of `bytes`. `more` says that `bytes`
 * is only the start of the member, so that a header running past it is too long rather than cut.
 */
function parseHeader(bytes: Uint8Array, field: string, path: string, more = false): NpyHeader {
  const fail = (message: string): Error => new Error(`training cache ${path}: ${field} ${message}`);
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw fail('is not a .npy array (its magic bytes are wrong)');
  }

  const major = bytes[6];
  if (major < 1 || major > 3) throw fail(`is a .npy of version ${major}; expected 1, 2 or 3`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const start = major === 1 ? 10 : 12;
  if (bytes.length < start) throw fail('is truncated inside its .npy header');
  const length = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  if (start + length > bytes.length) {
    if (more) throw fail(`has a .npy header of ${length} bytes; expected at most ${HEAD_BYTES}`);
    throw fail('is truncated inside its .npy header');
  }
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(
    bytes.subarray(start, start + length),
  );

  const descr = /'descr'\s*:\s*(['"])(.*?)\1/.exec(header)?.[2];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined) throw fail(`has a dtype this reader does not know: ${header.trim()}`);
  if (fortran === undefined || shapeText === undefined) {
    throw fail(`has a .npy header without fortran_order or shape: ${header.trim()}`);
  }
  if (fortran === 'True') {
    throw fail(
      'is stored in Fortran (column-major) order; expected C order (np.ascontiguousarray)',
    );
  }

  const type = /^([<>|=])([a-zA-Z])(\d*)$/.exec(descr);
  if (type === null) throw fail(`has dtype ${descr}; expected numbers or strings`);
  const [, order, kind, width] = type;
  if (order === '>') throw fail(`is big-endian (${descr}); expected little-endian (<)`);
  if (order === '=' && endianness() !== 'LE') throw fail(`has native-order dtype ${descr}`);
  const size = kind === 'U' ? Number(width) * 4 : Number(width);
  const strings = kind === 'U' || kind === 'S';
  if (!strings && kind !== 'O' && !NUMERIC_SIZES[kind]?.includes(size)) {
    throw fail(`has dtype ${descr}; expected a float, int, bool or string dtype`);
  }

  const shape = shapeText
    .split(',')
    .map((d) => d.trim())
    .filter((d) => d !== '')
    .map((d) => (/^\d+L?$/.test(d) ? Number.parseInt(d, 10) : NaN));
  const count = shape.reduce((n, d) => n * d, 1);
  if (!Number.isSafeInteger(count) || !Number.isSafeInteger(count * size)) {
    throw fail(`has a shape this reader cannot use: (${shapeText})`);
  }
  const what = `(${shape.join(', ')}) of ${descr}`;
  return { kind, size, descr, shape, count, start: start + length, what };
}

/** Parses a whole `.npy` member and checks the payload holds every item. */
function parseNpy(bytes: Uint8Array, field: string, path: string): NpyArray {
  const { kind, size, descr, shape, count, start, what } = parseHeader(bytes, field, path);
  const data = bytes.subarray(start);
  if (kind !== 'O' && data.length < count * size) {
    throw new Error(
      `training cache ${path}: ${field} is truncated: ` +
        `${what} needs ${count * size} bytes, has ${data.length}`,
    );
  }
  return { field, kind, size, descr, shape, count, data };
}

function readLabels(array: NpyArray, path: string, fail: Fail): string[] {
  if (array.shape.length !== 1) {
    throw fail(`labels has shape (${array.shape.join(', ')}); expected a list of class names`);
  }

  let labels: string[];
  if (array.kind === 'O') {
    labels = unpickleStringArray(array.data, `labels from ${path}`);
    if (labels.length !== array.count) {
      throw new PickleRefusedError(
        `refusing to load labels from ${path}: its pickle holds ${labels.length} strings ` +
          `but its header says ${array.count}`,
      );
    }
  } else if (array.kind === 'U') {
    labels = [];
    for (let i = 0; i < array.count; i++) {
      const label = decodeUtf32le(array.data.subarray(i * array.size, (i + 1) * array.size));
      if (label === undefined) throw fail(`labels holds text that is not Unicode at index ${i}`);
      labels.push(label);
    }
  } else if (array.kind === 'S') {
    // numpy's bytes strings, padded with NULs; class names written as bytes are UTF-8.
    const text = new TextDecoder('utf-8', { fatal: true });
    labels = [];
    for (let i = 0; i < array.count; i++) {
      const bytes = array.data.subarray(i * array.size, (i + 1) * array.size);
      const end = bytes.indexOf(0);
      try {
        labels.push(text.decode(end < 0 ? bytes : bytes.subarray(0, end)));
      } catch {
        throw fail(`labels holds bytes that are not UTF-8 text at index ${i}`);
      }
    }
  } else {
    throw fail(`labels has dtype ${array.descr}; expected strings (<U, |S or object)`);
  }

  if (labels.length === 0) throw fail('labels is empty; expected at least one class name');
  const seen = new Set<string>();
  labels.forEach((label, i) => {
    if (label === '') throw fail(`labels has an empty name at index ${i}`);
    if (seen.has(label)) throw fail(`labels names '${label}' twice`);
    seen.add(label);
  });
  return labels;
}

/**
 * `[rows, cols]` float32 from any numeric dtype; refuses NaN and infinities. Hands the event loop
 * back every few megabytes it checks.
 */
async function matrix(array: NpyArray, fail: Fail): Promise<Matrix> {
  if (array.shape.length !== 2) {
    throw fail(`${array.field} has shape (${array.shape.join(', ')}); expected [rows, columns]`);
  }
  const [rows, cols] = array.shape;
  const values = await toFloat32(array, fail);
  const bad = await findIndexYielding(values, (v) => !Number.isFinite(v));
  if (bad >= 0) {
    // A finite float64 can still be too large for float32.
    const { data, kind, size } = array;
    const stored = reader(new DataView(data.buffer, data.byteOffset), kind, size)!(bad * size);
    const large = Number.isFinite(stored);
    throw fail(
      `${array.field} holds ${large ? stored : values[bad]} at row ${Math.floor(bad / cols)}, ` +
        `column ${bad % cols}; ` +
        (large
          ? "expected numbers within float32's range (about 3.4e38)"
          : 'expected finite numbers'),
    );
  }
  return { values, rows, cols };
}

/**
 * A label matrix: `[rows, classes]` with every value in [-1, 1]. A 1-D array is read as one
 * column when there is a single class, which is how a binary cache may store it.
 */
async function labelMatrix(array: NpyArray, classes: number, fail: Fail): Promise<Matrix> {
  const asColumn = array.shape.length === 1 && classes === 1;
  const y = await matrix(asColumn ? { ...array, shape: [array.shape[0], 1] } : array, fail);
  const bad = await findIndexYielding(y.values, (v) => v < -1 || v > 1);
  if (bad >= 0) {
    throw fail(
      `${array.field} holds ${y.values[bad]} at row ${Math.floor(bad / y.cols)}, ` +
        `column ${bad % y.cols}; expected -1, 0 or 1`,
    );
  }
  return y;
}

function checkPair(
  x: Matrix,
  y: Matrix,
  xName: string,
  yName: string,
  classes: number,
  fail: Fail,
) {
  if (x.rows !== y.rows) {
    throw fail(
      `${yName} has ${y.rows} rows but ${xName} has ${x.rows}; expected one per embedding`,
    );
  }
  if (y.cols !== classes) {
    throw fail(`${yName} has ${y.cols} columns but labels has ${classes}; expected one per class`);
  }
}

const littleEndianHost = endianness() === 'LE';

/** Values checked between two turns of the event loop. */
const CHECK_SLICE = 1024 * 1024;

/** The first index whose value meets `test`, or -1; hands the event loop back between slices. */
async function findIndexYielding(
  values: Float32Array,
  test: (value: number) => boolean,
): Promise<number> {
  for (let start = 0; start < values.length; start += CHECK_SLICE) {
    const end = Math.min(values.length, start + CHECK_SLICE);
    for (let i = start; i < end; i++) if (test(values[i])) return i;
    if (end < values.length) await nextTurn();
  }
  return -1;
}

/**
 * The values as float32: little-endian float32 read in place where the payload is aligned (numpy
 * pads its headers so that it is, and the archive reader gives each member a buffer of its own),
 * otherwise converted into a new array a slice at a time, handing the event loop back between
 * slices.
 */
async function toFloat32(array: NpyArray, fail: Fail): Promise<Float32Array> {
  const { kind, size, count, data } = array;
  if (kind === 'f' && size === 4 && littleEndianHost && data.byteOffset % 4 === 0) {
    return new Float32Array(data.buffer, data.byteOffset, count);
  }
  const out = new Float32Array(count);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const read = reader(view, kind, size);
  if (read === undefined) {
    throw fail(`${array.field} has dtype ${array.descr}; expected numbers`);
  }
  const bytes = new Uint8Array(out.buffer);
  for (let start = 0; start < count; start += CHECK_SLICE) {
    const end = Math.min(count, start + CHECK_SLICE);
    if (kind === 'f' && size === 4 && littleEndianHost) {
      // A byte copy also aligns the payload.
      bytes.set(data.subarray(start * 4, end * 4), start * 4);
    } else {
      for (let i = start; i < end; i++) out[i] = read(i * size);
    }
    if (end < count) await nextTurn();
  }
  return out;
}

function reader(view: DataView, kind: string, size: number): ((at: number) => number) | undefined {
  switch (`${kind}${size}`) {
    case 'f4':
      return (at) => view.getFloat32(at, true);
    case 'f8':
      return (at) => view.getFloat64(at, true);
    case 'i1':
      return (at) => view.getInt8(at);
    case 'i2':
      return (at) => view.getInt16(at, true);
    case 'i4':
      return (at) => view.getInt32(at, true);
    case 'i8':
      return (at) => Number(view.getBigInt64(at, true));
    case 'u1':
    case 'b1':
      return (at) => view.getUint8(at);
    case 'u2':
      return (at) => view.getUint16(at, true);
    case 'u4':
      return (at) => view.getUint32(at, true);
    case 'u8':
      return (at) => Number(view.getBigUint64(at, true));
    default:
      return undefined;
  }
}
