import type { Node, NodeAPI, NodeMessage, NodeMessageInFlow, NodeStatus } from 'node-red';
import { isAbsolute, resolve } from 'path';
import { DataSet, createDataSet } from '../../src/dataset/dataset';
import { initBackend } from '../../src/train/backend';

export type Send = (msg: NodeMessage | (NodeMessage | NodeMessage[] | null)[]) => void;
export type Done = (err?: Error) => void;

/** The palette category all nodes of this package share. */
export const CATEGORY = 'custom classifier';

const STATUS_LENGTH = 32;

function short(text: string): string {
  return text.length > STATUS_LENGTH ? `${text.slice(0, STATUS_LENGTH - 1)}…` : text;
}

/** Status texts in Node-RED's conventions: blue dot while working, red ring on failure. */
export const status = {
  working: (text: string): NodeStatus => ({ fill: 'blue', shape: 'dot', text: short(text) }),
  done: (text: string): NodeStatus => ({ fill: 'green', shape: 'dot', text: short(text) }),
  idle: (text: string): NodeStatus => ({ fill: 'grey', shape: 'ring', text: short(text) }),
  failed: (err: unknown): NodeStatus => ({
    fill: 'red',
    shape: 'ring',
    text: short(`failed: ${firstLine(err)}`),
  }),
};

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  // The path in front of most messages is long; the status shows what went wrong.
  const tail = message.split(': ').slice(-1)[0];
  return tail.split('\n')[0];
}

/**
 * Registers an input handler that may be async: whatever it throws or rejects with reaches
 * `done(err)`, so a Catch node sees it and the runtime never gets an unhandled rejection.
 */
export function onInput(
  node: Node,
  handler: (msg: NodeMessageInFlow, send: Send) => Promise<void> | void,
): void {
  node.on('input', (msg: NodeMessageInFlow, send: Send, done: Done) => {
    Promise.resolve()
      .then(() => handler(msg, send))
      .then(
        () => done(),
        (err: unknown) => {
          node.status(status.failed(err));
          done(err instanceof Error ? err : new Error(String(err)));
        },
      );
  });
}

/**
 * A path from a node's settings or a message: `${VAR}` parts come from the environment (as
 * Node-RED resolves them for the flow), `~` is the home folder, and a relative path is taken
 * from the Node-RED user directory, where flows and settings live.
 */
export function resolvePath(RED: NodeAPI, node: Node, value: string): string {
  const expanded = value.includes('${')
    ? String(RED.util.evaluateNodeProperty(value, 'env', node, {} as NodeMessage))
    : value;
  const home = expanded.replace(/^~(?=$|[\\/])/, process.env.HOME ?? '~');
  if (isAbsolute(home)) return home;
  const userDir = (RED.settings as { userDir?: string }).userDir ?? process.cwd();
  return resolve(userDir, home);
}

/** Checks that a message carries a data set as this package's nodes send it. */
export function dataSetFrom(payload: unknown, where = 'msg.payload'): DataSet {
  const d = payload as Partial<DataSet> | undefined;
  const ok =
    d !== null &&
    typeof d === 'object' &&
    d.x instanceof Float32Array &&
    d.y instanceof Float32Array &&
    typeof d.dim === 'number' &&
    Array.isArray(d.labels) &&
    d.parts instanceof Uint8Array;
  if (!ok) {
    throw new Error(
      `${where}: expected a data set (from a classifier loader node: x, y, dim, labels, parts), ` +
        `got ${payload === null ? 'null' : typeof payload}`,
    );
  }
  // Node-RED deep-copies messages for extra wires: the copy is rebuilt and checked again.
  return createDataSet(d as DataSet);
}

/** Reads a number setting, or throws an error naming the field and the expected range. */
export function numberSetting(
  value: unknown,
  field: string,
  check: (v: number) => boolean,
  expected: string,
): number {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n) || !check(n)) {
    throw new Error(`${field}: expected ${expected}, got "${String(value)}"`);
  }
  return n;
}

/** Loads the TF.js backend once, logging the choice through the node. */
export function backendFor(node: Node): Promise<string> {
  return initBackend({ log: (line) => node.log(line) });
}
