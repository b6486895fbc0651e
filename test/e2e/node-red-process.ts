import { ChildProcess, spawn } from 'child_process';
import { mkdtempSync, rmSync } from 'fs';
import { createServer } from 'net';
import { tmpdir } from 'os';
import { join } from 'path';
import WebSocket from 'ws';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { prepareUserDir } = require('../../scripts/node-red-home') as {
  prepareUserDir: (dir: string, options: { port: number; tours: boolean }) => string;
};

export interface FlowNode {
  id: string;
  type: string;
  z?: string;
  name?: string;
  [key: string]: unknown;
}

/** A message a debug node published to the editor. */
export interface DebugMessage {
  id: string;
  name?: string;
  topic?: string;
  msg: string;
  format: string;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/**
 * Node-RED as its own process, with a fresh user directory that has this package installed
 * (linked), driven through its admin HTTP API and its editor websocket.
 */
export class NodeRedProcess {
  readonly userDir = mkdtempSync(join(tmpdir(), 'node-red e2e '));
  readonly log: string[] = [];
  readonly debug: DebugMessage[] = [];
  private child?: ChildProcess;
  private socket?: WebSocket;
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /**
   * Starts Node-RED; after {@link kill} it starts again on the same user directory, with the
   * flows deployed before. `env` is added to the process's environment.
   */
  async start(env: Record<string, string> = {}): Promise<void> {
    this.port = await freePort();
    const settings = prepareUserDir(this.userDir, { port: this.port, tours: false });
    const red = require.resolve('node-red/red.js');
    this.child = spawn(process.execPath, [red, '--userDir', this.userDir, '--settings', settings], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
      // In its user directory, as `node-red` is usually started: relative paths resolve there.
      cwd: this.userDir,
    });
    const collect = (chunk: Buffer) => this.log.push(...chunk.toString().split('\n'));
    this.child.stdout!.on('data', collect);
    this.child.stderr!.on('data', collect);
    await this.waitFor(async () => (await fetch(`${this.url}/flows`).catch(() => undefined))?.ok);
    await this.connectDebug();
  }

  private async connectDebug(): Promise<void> {
    const socket = new WebSocket(`ws://127.0.0.1:${this.port}/comms`);
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    socket.send(JSON.stringify({ subscribe: 'debug' }));
    socket.on('message', (data) => {
      const events = JSON.parse(data.toString()) as { topic: string; data: DebugMessage }[];
      for (const e of [events].flat()) if (e.topic === 'debug') this.debug.push(e.data);
    });
    this.socket = socket;
  }

  /** Replaces all flows (a full deploy) and waits until the runtime has started them. */
  async deploy(flows: FlowNode[]): Promise<void> {
    const res = await fetch(`${this.url}/flows`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
      body: JSON.stringify(flows),
    });
    if (!res.ok) throw new Error(`deploy failed: ${res.status} ${await res.text()}`);
  }

  async flows(): Promise<FlowNode[]> {
    return (await (await fetch(`${this.url}/flows`)).json()) as FlowNode[];
  }

  /** Presses an inject node's button, as the editor does. */
  async inject(id: string): Promise<void> {
    // A deploy answers before the new nodes have started: until then the button answers 404.
    const res = await this.waitFor(
      async () => {
        const r = await fetch(`${this.url}/inject/${id}`, { method: 'POST' });
        return r.status === 404 ? undefined : r;
      },
      30,
      `inject node ${id} to start`,
    );
    if (!res.ok) throw new Error(`inject ${id} failed: ${res.status} ${await res.text()}`);
  }

  /** Polls `check` every 100 ms until it is truthy or `seconds` pass. */
  async waitFor<T>(
    check: () => Promise<T> | T,
    seconds = 60,
    what = 'condition',
  ): Promise<NonNullable<T>> {
    const deadline = Date.now() + seconds * 1000;
    for (;;) {
      const value = await check();
      if (value) return value as NonNullable<T>;
      if (Date.now() > deadline) {
        throw new Error(
          `timed out waiting for ${what}; Node-RED log:\n${this.log.slice(-40).join('\n')}`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Kills Node-RED at once (SIGKILL), as a power cut would; the user directory stays. */
  async kill(): Promise<void> {
    this.socket?.close();
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    this.socket?.close();
    const child = this.child;
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGINT');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    rmSync(this.userDir, { recursive: true, force: true });
  }
}
