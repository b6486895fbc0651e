/**
 * A restricted reader for the one pickle numpy writes into an `.npy` file of dtype object: an
 * ndarray whose items are strings.
 *
 * Python's pickle is a small stack machine whose GLOBAL and REDUCE opcodes import and call
 * anything, which is how a crafted file runs commands. This machine never imports or calls: the few
 * globals an object ndarray needs become inert placeholders, REDUCE and BUILD on them only record
 * their arguments, and any other global or an opcode missing from the table below is refused as
 * soon as it is reached. Whatever the pickle describes, the result is a list of strings or an
 * error.
 */

/** Thrown when a pickle is refused; `message` already says which file and array. */
export class PickleRefusedError extends Error {
  override readonly name = 'PickleRefusedError';
}

interface Global {
  readonly kind: 'global';
  readonly module: string;
  readonly name: string;
}

/** What REDUCE or NEWOBJ on a placeholder leaves behind: the call it would have made. */
interface Call {
  readonly kind: 'call';
  readonly callable: Global;
  readonly args: Value;
  state?: Value;
}

interface Tuple {
  readonly kind: 'tuple';
  readonly items: readonly Value[];
}

interface List {
  readonly kind: 'list';
  readonly items: Value[];
}

interface Dict {
  readonly kind: 'dict';
  readonly entries: [Value, Value][];
}

type Value =
  null | boolean | number | bigint | string | Uint8Array | Global | Call | Tuple | List | Dict;

/** The only symbols an object ndarray of strings needs; `module name` as pickle spells them. */
const ALLOWED_GLOBALS = new Set([
  'numpy.core.multiarray _reconstruct',
  'numpy._core.multiarray _reconstruct',
  'numpy.core.multiarray scalar',
  'numpy._core.multiarray scalar',
  'numpy ndarray',
  'numpy dtype',
  // Protocol 2 has no bytes opcode, so bytes arrive as an encode(str, 'latin1') call.
  '_codecs encode',
  'codecs encode',
]);

/** Modules whose functions users know by another name, to make refusals readable. */
const MODULE_ALIASES: Readonly<Record<string, string>> = {
  posix: 'os',
  nt: 'os',
  __builtin__: 'builtins',
};

const OP = {
  MARK: 0x28,
  STOP: 0x2e,
  POP: 0x30,
  POP_MARK: 0x31,
  BINBYTES: 0x42,
  SHORT_BINBYTES: 0x43,
  BINFLOAT: 0x47,
  BININT: 0x4a,
  BININT1: 0x4b,
  BININT2: 0x4d,
  NONE: 0x4e,
  REDUCE: 0x52,
  BINUNICODE: 0x58,
  APPEND: 0x61,
  BUILD: 0x62,
  GLOBAL: 0x63,
  DICT: 0x64,
  APPENDS: 0x65,
  BINGET: 0x68,
  LONG_BINGET: 0x6a,
  LIST: 0x6c,
  BINPUT: 0x71,
  LONG_BINPUT: 0x72,
  SETITEM: 0x73,
  TUPLE: 0x74,
  SETITEMS: 0x75,
  EMPTY_TUPLE: 0x29,
  EMPTY_LIST: 0x5d,
  EMPTY_DICT: 0x7d,
  PROTO: 0x80,
  NEWOBJ: 0x81,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  LONG1: 0x8a,
  SHORT_BINUNICODE: 0x8c,
  BINUNICODE8: 0x8d,
  BINBYTES8: 0x8e,
  STACK_GLOBAL: 0x93,
  MEMOIZE: 0x94,
  FRAME: 0x95,
} as const;

/** Internal signal carrying the reason; the public error adds the file and array. */
class Refusal extends Error {}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Reads the pickle of a 1-D numpy object array of strings and returns its items in order.
 *
 * @param bytes the pickle stream (the `.npy` payload after its header)
 * @param what names the array for errors, e.g. `labels from /data/cache.npz`
 * @throws PickleRefusedError when the pickle names anything but the allowed numpy symbols, uses
 *   an opcode outside the supported set, is malformed, or holds anything but strings
 */
export function unpickleStringArray(bytes: Uint8Array, what: string): string[] {
  try {
    return stringItems(run(bytes));
  } catch (err) {
    if (!(err instanceof Refusal)) throw err;
    throw new PickleRefusedError(
      `refusing to load ${what}: ${err.message}, and only an array of strings is accepted`,
    );
  }
}

function run(bytes: Uint8Array): Value {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: Value[] = [];
  const marks: number[] = [];
  const memo = new Map<number, Value>();
  let pos = 0;

  const need = (n: number): number => {
    if (n < 0 || pos + n > bytes.length) throw new Refusal(`its pickle ends early at byte ${pos}`);
    const at = pos;
    pos += n;
    return at;
  };
  const u8 = (): number => bytes[need(1)];
  const u16 = (): number => view.getUint16(need(2), true);
  const u32 = (): number => view.getUint32(need(4), true);
  const u64 = (): number => {
    const at = need(8);
    const n = view.getBigUint64(at, true);
    if (n > BigInt(bytes.length)) throw new Refusal(`its pickle ends early at byte ${at}`);
    return Number(n);
  };
  const raw = (n: number): Uint8Array => bytes.subarray(need(n), pos);
  const text = (n: number): string => {
    const data = raw(n);
    try {
      return utf8.decode(data);
    } catch {
      throw new Refusal(`its pickle holds text that is not UTF-8 before byte ${pos}`);
    }
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) throw new Refusal(`its pickle ends early at byte ${pos}`);
    return text(end - pos + 1).slice(0, -1);
  };
  const pop = (): Value => {
    const floor = marks.length > 0 ? marks[marks.length - 1] : 0;
    if (stack.length <= floor) throw new Refusal(`its pickle pops an empty stack at byte ${pos}`);
    return stack.pop() as Value;
  };
  const top = (): Value => {
    if (stack.length === 0) throw new Refusal(`its pickle reads an empty stack at byte ${pos}`);
    return stack[stack.length - 1];
  };
  const popMark = (): Value[] => {
    const mark = marks.pop();
    if (mark === undefined) throw new Refusal(`its pickle has no MARK before byte ${pos}`);
    return stack.splice(mark);
  };
  const memoGet = (index: number): Value => {
    if (!memo.has(index)) throw new Refusal(`its pickle reads memo ${index}, never stored`);
    return memo.get(index) as Value;
  };
  const list = (value: Value): List => {
    if (isKind(value, 'list')) return value;
    throw new Refusal(`its pickle appends to a ${typeName(value)} at byte ${pos}`);
  };
  const dict = (value: Value): Dict => {
    if (isKind(value, 'dict')) return value;
    throw new Refusal(`its pickle sets an item of a ${typeName(value)} at byte ${pos}`);
  };

  for (;;) {
    const at = pos;
    const op = u8();
    switch (op) {
      case OP.PROTO:
        if (u8() > 5) throw new Refusal(`its pickle uses a protocol newer than 5`);
        break;
      case OP.FRAME:
        u64();
        break;
      case OP.GLOBAL: {
        const module = line();
        stack.push(allowedGlobal(module, line()));
        break;
      }
      case OP.STACK_GLOBAL: {
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') {
          throw new Refusal(`its pickle names a global by a non-string at byte ${at}`);
        }
        stack.push(allowedGlobal(module, name));
        break;
      }
      case OP.SHORT_BINUNICODE:
        stack.push(text(u8()));
        break;
      case OP.BINUNICODE:
        stack.push(text(u32()));
        break;
      case OP.BINUNICODE8:
        stack.push(text(u64()));
        break;
      case OP.SHORT_BINBYTES:
        stack.push(raw(u8()));
        break;
      case OP.BINBYTES:
        stack.push(raw(u32()));
        break;
      case OP.BINBYTES8:
        stack.push(raw(u64()));
        break;
      case OP.BININT:
        stack.push(view.getInt32(need(4), true));
        break;
      case OP.BININT1:
        stack.push(u8());
        break;
      case OP.BININT2:
        stack.push(u16());
        break;
      case OP.LONG1:
        stack.push(littleEndianSigned(raw(u8())));
        break;
      case OP.BINFLOAT:
        stack.push(view.getFloat64(need(8), false));
        break;
      case OP.NEWTRUE:
        stack.push(true);
        break;
      case OP.NEWFALSE:
        stack.push(false);
        break;
      case OP.NONE:
        stack.push(null);
        break;
      case OP.MARK:
        marks.push(stack.length);
        break;
      case OP.POP:
        pop();
        break;
      case OP.POP_MARK:
        popMark();
        break;
      case OP.EMPTY_TUPLE:
        stack.push({ kind: 'tuple', items: [] });
        break;
      case OP.TUPLE:
        stack.push({ kind: 'tuple', items: popMark() });
        break;
      case OP.TUPLE1:
      case OP.TUPLE2:
      case OP.TUPLE3: {
        const items = Array.from({ length: op - OP.TUPLE1 + 1 }, pop).reverse();
        stack.push({ kind: 'tuple', items });
        break;
      }
      case OP.EMPTY_LIST:
        stack.push({ kind: 'list', items: [] });
        break;
      case OP.LIST:
        stack.push({ kind: 'list', items: popMark() });
        break;
      case OP.APPEND: {
        const item = pop();
        list(top()).items.push(item);
        break;
      }
      case OP.APPENDS: {
        const items = popMark();
        const target = list(top()).items;
        for (const item of items) target.push(item);
        break;
      }
      case OP.EMPTY_DICT:
        stack.push({ kind: 'dict', entries: [] });
        break;
      case OP.DICT:
        stack.push({ kind: 'dict', entries: pairs(popMark()) });
        break;
      case OP.SETITEM: {
        const value = pop();
        const key = pop();
        dict(top()).entries.push([key, value]);
        break;
      }
      case OP.SETITEMS: {
        const items = pairs(popMark());
        const entries = dict(top()).entries;
        for (const entry of items) entries.push(entry);
        break;
      }
      case OP.BINPUT:
        memo.set(u8(), top());
        break;
      case OP.LONG_BINPUT:
        memo.set(u32(), top());
        break;
      case OP.MEMOIZE:
        memo.set(memo.size, top());
        break;
      case OP.BINGET:
        stack.push(memoGet(u8()));
        break;
      case OP.LONG_BINGET:
        stack.push(memoGet(u32()));
        break;
      case OP.REDUCE:
      case OP.NEWOBJ: {
        const args = pop();
        const callable = pop();
        if (!isKind(callable, 'global')) {
          throw new Refusal(`its pickle calls a ${typeName(callable)} at byte ${at}`);
        }
        stack.push({ kind: 'call', callable, args });
        break;
      }
      case OP.BUILD: {
        const state = pop();
        const target = top();
        if (!isKind(target, 'call') || target.state !== undefined) {
          throw new Refusal(`its pickle sets the state of a ${typeName(target)} at byte ${at}`);
        }
        target.state = state;
        break;
      }
      case OP.STOP:
        return pop();
      default:
        throw new Refusal(
          `its pickle uses opcode 0x${op.toString(16).padStart(2, '0')} at byte ${at}, ` +
            'which this reader does not run',
        );
    }
  }
}

function allowedGlobal(module: string, name: string): Global {
  if (ALLOWED_GLOBALS.has(`${module} ${name}`)) return { kind: 'global', module, name };
  const alias = MODULE_ALIASES[module];
  const known = alias === undefined ? '' : ` (${alias}.${name})`;
  throw new Refusal(`its pickle calls ${module}.${name}${known}`);
}

/**
 * Unpacks the BUILD state of `_reconstruct(ndarray, ...)`: (version, shape, dtype, fortran,
 * items).
 */
function stringItems(result: Value): string[] {
  if (!isCallOf(result, '_reconstruct') || !isKind(result.state, 'tuple')) {
    throw new Refusal(`its pickle holds a ${typeName(result)}, not a numpy array`);
  }
  const state = result.state.items;
  if (state.length !== 5) {
    throw new Refusal(`its pickle holds a numpy array state of ${state.length} fields, not 5`);
  }
  const [, shape, dtype, , data] = state;
  if (!isCallOf(dtype, 'dtype') || !isKind(dtype.args, 'tuple') || !isObjectCode(dtype.args)) {
    throw new Refusal('its pickle holds a numpy array whose dtype is not object');
  }
  if (!isKind(shape, 'tuple') || !isKind(data, 'list')) {
    throw new Refusal('its pickle holds a numpy array without a shape and a list of items');
  }
  const count = shape.items.reduce<number>((n, d) => n * (typeof d === 'number' ? d : NaN), 1);
  if (count !== data.items.length) {
    throw new Refusal(
      `its pickle holds a numpy array of ${data.items.length} items for a shape of ${count}`,
    );
  }
  return data.items.map((item, index) => {
    const value = typeof item === 'string' ? item : numpyString(item);
    if (value === undefined) {
      throw new Refusal(`its pickle holds a ${typeName(item)} at index ${index}`);
    }
    return value;
  });
}

function isObjectCode(args: Tuple): boolean {
  const code = args.items[0];
  return code === 'O8' || code === 'O4' || code === 'O';
}

/** A `numpy.str_` item: scalar(dtype('<U{n}'), UTF-32LE bytes), trailing NULs dropped. */
function numpyString(item: Value): string | undefined {
  if (!isCallOf(item, 'scalar') || !isKind(item.args, 'tuple')) return undefined;
  const [dtype, data] = item.args.items;
  if (!isCallOf(dtype, 'dtype') || !isKind(dtype.args, 'tuple')) return undefined;
  const code = dtype.args.items[0];
  const order = isKind(dtype.state, 'tuple') ? dtype.state.items[1] : undefined;
  if (typeof code !== 'string' || !/^U\d+$/.test(code) || !(data instanceof Uint8Array)) {
    return undefined;
  }
  if (order !== '<' || data.length % 4 !== 0) return undefined;
  return decodeUtf32le(data);
}

/**
 * Decodes fixed-width UTF-32LE text as numpy stores `<U{n}`: one code point per 4 bytes, padded
 * with NULs at the end, which numpy drops when it reads the value.
 */
export function decodeUtf32le(bytes: Uint8Array): string | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let end = bytes.length / 4;
  while (end > 0 && view.getUint32((end - 1) * 4, true) === 0) end--;
  let out = '';
  for (let i = 0; i < end; i++) {
    const point = view.getUint32(i * 4, true);
    if (point > 0x10ffff) return undefined;
    out += String.fromCodePoint(point);
  }
  return out;
}

function isCallOf(value: Value | undefined, name: string): value is Call {
  return isKind(value, 'call') && value.callable.name === name;
}

function isKind<K extends 'global' | 'call' | 'tuple' | 'list' | 'dict'>(
  value: Value | undefined,
  kind: K,
): value is Extract<Value, { kind: K }> {
  return typeof value === 'object' && value !== null && 'kind' in value && value.kind === kind;
}

function typeName(value: Value | undefined): string {
  if (value === undefined || value === null) return 'None';
  if (typeof value === 'string') return 'string';
  if (typeof value === 'number' || typeof value === 'bigint') return 'number';
  if (typeof value === 'boolean') return 'bool';
  if (value instanceof Uint8Array) return 'bytes';
  if (value.kind === 'call') return `${value.callable.module}.${value.callable.name}(...)`;
  if (value.kind === 'global') return `${value.module}.${value.name}`;
  return value.kind;
}

function pairs(items: Value[]): [Value, Value][] {
  if (items.length % 2 !== 0) throw new Refusal('its pickle has a dict with a key but no value');
  const out: [Value, Value][] = [];
  for (let i = 0; i < items.length; i += 2) out.push([items[i], items[i + 1]]);
  return out;
}

/** LONG1's payload: a two's complement integer, least significant byte first. */
function littleEndianSigned(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
  if (bytes.length > 0 && bytes[bytes.length - 1] & 0x80) n -= 1n << BigInt(8 * bytes.length);
  return n;
}
