import { setImmediate as nextTurn } from 'timers/promises';
import type { NodeAPI } from 'node-red';

/** Registered once per runtime, whichever of our nodes loads first. */
const HOOK = 'onSend.custom-classifier-copy';

/** How deep {@link holdsTypedArray} looks: a trainer result's `predictions.test.scores` is 3. */
const SEARCH_DEPTH = 4;

/** Bytes of typed arrays copied between two turns of the event loop. */
const SLICE_BYTES = 16 * 1024 * 1024;

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

/** A typed array and the new array its values are still to be copied into. */
type Pending = [from: TypedArray, to: TypedArray];

/** What Node-RED's router hands the onSend hook for each message a node sends on a wire. */
interface SendEvent {
  msg: Record<string, unknown>;
  cloneMessage: boolean;
  source?: { id: string };
}

/**
 * Makes Node-RED's copy of a message for each extra wire cheap when its payload holds typed
 * arrays: a data set, or a trainer result with its predictions.
 *
 * Node-RED copies with lodash.clonedeep 4.5, which copies a typed array's buffer and then also
 * visits each element by its index as a string: for a data set of 50,000 x 1024 values that held
 * the event loop for most of a minute and built GiBs of index strings. This hook makes the same
 * deep copy, with typed arrays copied a slice of a few megabytes at a time and the event loop
 * handed back between slices, and tells Node-RED the message is copied. It runs when a node
 * sends, before Node-RED routes any of the messages, so no node receives one while it copies;
 * later messages of the same node wait for it, so each wire keeps its order. A
 * payload holding anything but plain objects, arrays, typed arrays and primitives (a Buffer, a
 * Date, a class instance) is left to Node-RED, as is every other part of the message.
 *
 * The hook is the runtime's, shared by all flows, so it is added once. A node API without hooks
 * (node-red-node-test-helper's) leaves copying to Node-RED.
 */
export function copyTypedArraysWhole(RED: Pick<NodeAPI, 'hooks' | 'util'>): void {
  if (RED.hooks === undefined || RED.hooks.has(HOOK)) return;
  /** Per sending node, the copies its earlier messages are still waiting for. */
  const busy = new Map<string, Promise<void>>();
  RED.hooks.add(HOOK, (events: SendEvent[]) => {
    const ours = events.filter((event) => event.cloneMessage && worthCopying(event.msg.payload));
    const source = events[0]?.source?.id ?? '';
    const before = busy.get(source);
    // A message goes on at once unless it needs a copy or an earlier message of its node is
    // still being copied: a wire delivers in the order its node sent.
    if (ours.length === 0 && before === undefined) return undefined;
    const done = (async () => {
      await before;
      for (const event of ours) await copyEvent(event, RED.util);
    })();
    busy.set(source, done);
    void done.then(() => {
      if (busy.get(source) === done) busy.delete(source);
    });
    return done;
  });
}

/** Whether a payload holds typed arrays; false for one that cannot even be looked at. */
function worthCopying(payload: unknown): boolean {
  try {
    return holdsTypedArray(payload, SEARCH_DEPTH);
  } catch {
    return false;
  }
}

/**
 * Replaces the event's message with a copy and tells Node-RED not to copy it again. Where the
 * copy fails (a getter that throws, memory), the message is left to Node-RED's own copy, and the
 * other messages of the send go on.
 */
async function copyEvent(event: SendEvent, util: Pick<NodeAPI, 'util'>['util']): Promise<void> {
  try {
    const pending: Pending[] = [];
    const payload = plainCopy(event.msg.payload, new Map(), pending);
    if (payload === NOT_PLAIN) return;
    await fill(pending);
    const rest: Record<string, unknown> = { ...event.msg, payload: undefined };
    event.msg = { ...util.cloneMessage(rest), payload };
    event.cloneMessage = false;
  } catch {
    // Node-RED copies the message its own way.
  }
}

/** Copies each pending array, a slice at a time, handing the event loop back between slices. */
async function fill(pending: Pending[]): Promise<void> {
  for (const [from, to] of pending) {
    const slice = Math.max(1, Math.floor(SLICE_BYTES / from.BYTES_PER_ELEMENT));
    for (let start = 0; start < from.length; start += slice) {
      (to as Float32Array).set(from.subarray(start, start + slice) as Float32Array, start);
      await nextTurn();
    }
  }
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
 * anything else that is not a primitive. Given `pending`, typed arrays are new arrays of the same
 * type and length whose values are left to copy, listed there.
 */
export function plainCopy(
  value: unknown,
  seen: Map<object, unknown>,
  pending?: Pending[],
): unknown {
  if (typeof value === 'function') return NOT_PLAIN;
  if (typeof value !== 'object' || value === null) return value;
  if (seen.has(value)) return seen.get(value);
  if (isTypedArray(value)) {
    const copy =
      pending === undefined
        ? value.slice()
        : new (value.constructor as new (length: number) => TypedArray)(value.length);
    if (pending !== undefined) pending.push([value, copy]);
    seen.set(value, copy);
    return copy;
  }

  if (Array.isArray(value) && Object.getPrototypeOf(value) === Array.prototype) {
    const copy: unknown[] = new Array(value.length);
    seen.set(value, copy);
    for (let i = 0; i < value.length; i++) {
      const item = plainCopy(value[i], seen, pending);
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
    const item = plainCopy((value as Record<string | symbol, unknown>)[key], seen, pending);
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
