import type { NodeAPI } from 'node-red';

/** Registered once per runtime, whichever of our nodes loads first. */
const HOOK = 'preRoute.custom-classifier-copy';

/** How deep {@link holdsTypedArray} looks: a trainer result's `predictions.test.scores` is 3. */
const SEARCH_DEPTH = 4;

/** What {@link plainCopy} returns for a value it leaves to Node-RED. */
const NOT_PLAIN = Symbol('not plain');

type TypedArray =
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array;

/**
 * Makes Node-RED's copy of a message for each extra wire cheap when its payload holds typed
 * arrays: a data set, or a trainer result with its predictions.
 *
 * Node-RED copies with lodash.clonedeep 4.5, which copies a typed array's buffer and then also
 * visits each element by its index as a string: for a data set of 50,000 x 1024 values that held
 * the event loop for most of a minute and built GiBs of index strings. This hook makes the same
 * deep copy, with each typed array copied in one piece, and tells Node-RED the message is copied.
 * A payload holding anything but plain objects, arrays, typed arrays and primitives (a Buffer, a
 * Date, a class instance) is left to Node-RED, as is every other part of the message.
 *
 * The hook is the runtime's, shared by all flows, so it is added once. A node API without hooks
 * (node-red-node-test-helper's) leaves copying to Node-RED.
 */
export function copyTypedArraysWhole(RED: Pick<NodeAPI, 'hooks' | 'util'>): void {
  if (RED.hooks === undefined || RED.hooks.has(HOOK)) return;
  RED.hooks.add(HOOK, (event: { msg: Record<string, unknown>; cloneMessage: boolean }) => {
    if (!event.cloneMessage || !holdsTypedArray(event.msg.payload, SEARCH_DEPTH)) return;
    const payload = plainCopy(event.msg.payload, new Map());
    if (payload === NOT_PLAIN) return;

    const rest: Record<string, unknown> = { ...event.msg, payload: undefined };
    event.msg = { ...RED.util.cloneMessage(rest), payload };
    event.cloneMessage = false;
  });
}

/** Whether a typed array sits within `depth` levels of plain objects and arrays. */
export function holdsTypedArray(value: unknown, depth: number): boolean {
  if (isTypedArray(value)) return true;
  if (depth === 0 || typeof value !== 'object' || value === null) return false;
  const children = Array.isArray(value) ? value : isPlainObject(value) ? Object.values(value) : [];
  // Looks at every child before going deeper: a data set's arrays are found without a walk.
  return (
    children.some(isTypedArray) ||
    children.some(
      (child: unknown) => typeof child === 'object' && holdsTypedArray(child, depth - 1),
    )
  );
}

/**
 * A deep copy of plain data, as lodash's `cloneDeep` makes it (shared and circular references
 * stay so), with typed arrays copied in one piece; {@link NOT_PLAIN} when the value holds
 * anything else that is not a primitive.
 */
export function plainCopy(value: unknown, seen: Map<object, unknown>): unknown {
  if (typeof value === 'function') return NOT_PLAIN;
  if (typeof value !== 'object' || value === null) return value;
  if (seen.has(value)) return seen.get(value);
  if (isTypedArray(value)) {
    const copy = value.slice();
    seen.set(value, copy);
    return copy;
  }

  if (Array.isArray(value) && Object.getPrototypeOf(value) === Array.prototype) {
    const copy: unknown[] = new Array(value.length);
    seen.set(value, copy);
    for (let i = 0; i < value.length; i++) {
      const item = plainCopy(value[i], seen);
      if (item === NOT_PLAIN) return NOT_PLAIN;
      copy[i] = item;
    }
    return copy;
  }

  if (!isPlainObject(value)) return NOT_PLAIN;
  const copy: Record<string | symbol, unknown> = {};
  seen.set(value, copy);
  const symbols = Object.getOwnPropertySymbols(value).filter((s) =>
    Object.prototype.propertyIsEnumerable.call(value, s),
  );
  for (const key of [...Object.keys(value), ...symbols]) {
    const item = plainCopy((value as Record<string | symbol, unknown>)[key], seen);
    if (item === NOT_PLAIN) return NOT_PLAIN;
    copy[key] = item;
  }
  return copy;
}

function isTypedArray(value: unknown): value is TypedArray {
  // A Buffer is a Uint8Array that lodash copies its own way: Node-RED's copy stays as it is.
  return ArrayBuffer.isView(value) && !(value instanceof DataView) && !Buffer.isBuffer(value);
}

function isPlainObject(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
