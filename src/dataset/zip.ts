import { open, FileHandle } from 'node:fs/promises';
import { setImmediate as nextTurn } from 'node:timers/promises';
import * as zlib from 'node:zlib';
import { once } from 'node:events';
import { AsyncFlateStreamHandler, FlateError, Unzip, UnzipDecoder, UnzipFile } from 'fflate';

/** A fault of the archive itself, its zip structure, rather than of what a member holds. */
export class ArchiveError extends Error {}

export interface ReadMembersOptions {
  /**
   * Called once per wanted member, before more than its first bytes are unzipped, with those
   * bytes (the first {@link HEAD_BYTES}, or all of a smaller member) and the size the central
   * directory records for it; throws to refuse the member.
   */
  check?(name: string, head: Uint8Array, size: number): void;
}

/** Bytes a check sees of a member's start: room for any `.npy` header numpy writes. */
export const HEAD_BYTES = 64 * 1024;

/** Bytes read from the file at a time. */
const READ_BYTES = 8 * 1024 * 1024;

/** Bytes handed to the unzipper at a time. */
const PIECE_BYTES = 64 * 1024;

/**
 * The event loop is handed back once this many bytes are unzipped, members passed or
 * milliseconds spent since it last turned.
 */
const TURN = { bytes: 8 * 1024 * 1024, members: 500, ms: 20 };

/** A member as the central directory lists it. */
interface Listed {
  crc: number;
  /** Unzipped size in bytes. */
  size: number;
  /** How often the name is listed. */
  count: number;
}

/**
 * The named members of a zip archive (stored or deflated), each in a buffer of its own, checked
 * against the CRC-32 and size its central directory entry records.
 *
 * The file is read a piece at a time into fflate's streaming reader, deflated members inflate in
 * Node's zlib off the event loop, and the loop is handed back every few megabytes or
 * milliseconds, so that an archive of hundreds of megabytes neither holds up the rest of the
 * process nor sits in memory beside its members. A member that grows
 * past its recorded size is refused as soon as it does; `check` sees each wanted member's first
 * bytes before the rest is unzipped. Wanted names the archive does not list are left out of the
 * result.
 *
 * @throws ArchiveError for a fault of the zip structure (no central directory, a member not
 *   found, listed twice, of another size or CRC-32, compressed otherwise); the file system's
 *   errors as they are; what `check` throws
 */
export async function readMembers(
  path: string,
  wanted: ReadonlySet<string>,
  options: ReadMembersOptions = {},
): Promise<Map<string, Uint8Array>> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const directory = await readDirectory(handle, size);
    for (const name of wanted) {
      if ((directory.get(name)?.count ?? 0) > 1) {
        throw new ArchiveError(`${name} is listed twice in the central directory`);
      }
    }
    const members = await unzipMembers(handle, size, wanted, directory, options);
    const out = new Map<string, Uint8Array>();
    for (const name of wanted) {
      const listed = directory.get(name);
      if (listed === undefined) continue;
      const member = members.get(name);
      if (member === undefined) {
        throw new ArchiveError(`${name} is listed in the central directory but was not found`);
      }
      out.set(name, member.contents(listed));
    }
    return out;
  } finally {
    await handle.close();
  }
}

/** Shared by the members of one archive: what was unzipped since the event loop last turned. */
interface Progress {
  bytes: number;
  members: number;
  /** performance.now() when the event loop last turned. */
  since: number;
}

async function unzipMembers(
  handle: FileHandle,
  size: number,
  wanted: ReadonlySet<string>,
  directory: ReadonlyMap<string, Listed>,
  options: ReadMembersOptions,
): Promise<Map<string, Member>> {
  const members = new Map<string, Member>();
  const progress: Progress = { bytes: 0, members: 0, since: performance.now() };
  // What went wrong inside the unzipper's callbacks, which may see it again as their error.
  let failure: unknown;
  const fail = (err: unknown): never => {
    failure ??= err;
    throw failure;
  };
  const unzip = new Unzip((file) => {
    progress.members++;
    const listed = directory.get(file.name);
    if (!wanted.has(file.name) || listed === undefined) {
      skip(file);
      return;
    }
    if (members.has(file.name)) fail(new ArchiveError(`${file.name} appears twice`));
    if (file.compression !== 0 && file.compression !== 8) {
      fail(
        new ArchiveError(
          `${file.name} is compressed with method ${file.compression}; ` +
            'expected stored (0) or deflated (8), as numpy writes',
        ),
      );
    }
    const member = new Member(file.name, listed.size, progress, options.check);
    members.set(file.name, member);
    file.ondata = (err, data, final) => {
      if (failure !== undefined) throw failure;
      if (err !== null) fail(new ArchiveError(`${file.name}: ${err.message}`));
      try {
        member.add(data, final);
      } catch (thrown) {
        fail(thrown);
      }
    };
    file.start();
  });
  const inflaters: ThreadedInflate[] = [];
  unzip.register(
    class extends ThreadedInflate {
      constructor() {
        super();
        inflaters.push(this);
      }
    },
  );

  try {
    for (let position = 0; position < size;) {
      // A new buffer each time: the unzipper may keep views of what it was given.
      const chunk = new Uint8Array(Math.min(READ_BYTES, size - position));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
      if (bytesRead === 0) throw new ArchiveError('the file ended while it was read');
      position += bytesRead;
      for (let at = 0; at < bytesRead; at += PIECE_BYTES) {
        const end = Math.min(bytesRead, at + PIECE_BYTES);
        try {
          unzip.push(chunk.subarray(at, end), position === size && end === bytesRead);
        } catch (err) {
          throw failure ?? new ArchiveError((err as Error).message);
        }
        // Only the member being read takes input; those before it have ended.
        await inflaters.at(-1)?.ready();
        if (failure !== undefined) throw failure;
        const { bytes, members: passed, since } = progress;
        if (bytes >= TURN.bytes || passed >= TURN.members || performance.now() - since >= TURN.ms) {
          await nextTurn();
          Object.assign(progress, { bytes: 0, members: 0, since: performance.now() });
        }
      }
    }
  } catch (err) {
    for (const inflater of inflaters) inflater.terminate();
    throw err;
  }
  // A member the archive cut short never hears its end from the unzipper: end it here.
  for (const inflater of inflaters) inflater.finish();
  await Promise.all(inflaters.map((inflater) => inflater.closed));
  if (failure !== undefined) throw failure;
  return members;
}

/**
 * Inflates a deflated member in Node's zlib, on its thread pool: the event loop only takes what
 * comes out, however much a piece of input expands to, and the inflating stops as soon as what
 * comes out is refused.
 */
class ThreadedInflate implements UnzipDecoder {
  static readonly compression = 8;
  ondata: AsyncFlateStreamHandler = () => undefined;
  /** Resolves once the stream has ended, failed or been stopped. */
  readonly closed: Promise<void>;
  private readonly stream = zlib.createInflateRaw({ chunkSize: 256 * 1024 });
  private ended = false;
  private full = false;

  constructor() {
    this.closed = new Promise((resolve) => this.stream.once('close', resolve));
    this.stream.on('data', (data: Buffer) => this.deliver(null, data, false));
    this.stream.on('end', () => this.deliver(null, new Uint8Array(0), true));
    this.stream.on('error', (err) => {
      const error = Object.assign(new Error(err.message), { code: 0 }) as FlateError;
      this.deliver(error, null, true);
    });
  }

  push(chunk: Uint8Array, final: boolean): void {
    if (this.stream.destroyed || this.ended) return;
    if (!this.stream.write(chunk)) this.full = true;
    if (final) this.finish();
  }

  /** Ends the input; the output still to come follows. */
  finish(): void {
    if (this.ended || this.stream.destroyed) return;
    this.ended = true;
    this.stream.end();
  }

  terminate(): void {
    this.stream.destroy();
  }

  /** Resolves when the stream takes more input, or has closed. */
  async ready(): Promise<void> {
    if (!this.full || this.stream.destroyed) return;
    const ac = new AbortController();
    await Promise.race([
      once(this.stream, 'drain', { signal: ac.signal }).catch(() => undefined),
      this.closed,
    ]);
    ac.abort();
    this.full = false;
  }

  /** Passes output on; what the receiver refuses (it records why) stops the stream. */
  private deliver(err: FlateError | null, data: Uint8Array | null, final: boolean): void {
    try {
      this.ondata(err, data as Uint8Array<ArrayBuffer>, final);
    } catch {
      this.stream.destroy();
    }
  }
}

/** Lets a member nobody reads pass; a stored one is not even kept while it passes. */
function skip(file: UnzipFile): void {
  if (file.compression !== 0) return;
  file.ondata = () => undefined;
  file.start();
}

/**
 * One member's bytes as they are unzipped and their running CRC-32: its first bytes until the
 * check has seen them, then a buffer of the recorded size (its own, so that an array inside is
 * aligned as its writer aligned it).
 */
class Member {
  private crc = 0;
  private length = 0;
  private complete = false;
  private head: Uint8Array[] | undefined = [];
  private buffer: Uint8Array | undefined;

  constructor(
    private readonly name: string,
    private readonly size: number,
    private readonly progress: Progress,
    private readonly check: ReadMembersOptions['check'],
  ) {}

  add(data: Uint8Array, final: boolean): void {
    this.crc = crc32(data, this.crc);
    const at = this.length;
    this.length += data.length;
    this.progress.bytes += data.length;
    if (this.length > this.size) {
      throw new ArchiveError(
        `${this.name} holds more than the ${this.size} bytes its central directory entry records`,
      );
    }
    if (final) this.complete = true;
    if (this.buffer !== undefined) {
      this.buffer.set(data, at);
    } else {
      this.head!.push(data.slice());
      if (this.length >= Math.min(this.size, HEAD_BYTES)) this.open();
      else if (final) throw this.cut();
    }
  }

  /** The member's bytes, checked against what its central directory entry records. */
  contents(listed: Listed): Uint8Array {
    if (!this.complete || this.length !== this.size || this.buffer === undefined) throw this.cut();
    if (this.crc !== listed.crc) {
      throw new ArchiveError(`${this.name} fails its CRC-32 check; the archive is corrupt`);
    }
    return this.buffer;
  }

  private cut(): ArchiveError {
    return new ArchiveError(
      `${this.name} ends after ${this.length} of the ${this.size} bytes ` +
        'its central directory entry records',
    );
  }

  /** Shows the first bytes to the check, then moves them into the member's buffer. */
  private open(): void {
    const head = concat(this.head!, this.length);
    this.head = undefined;
    this.check?.(this.name, head, this.size);
    try {
      this.buffer = new Uint8Array(this.size);
    } catch {
      throw new ArchiveError(`${this.name} records ${this.size} bytes, more than memory allows`);
    }
    this.buffer.set(head);
  }
}

function concat(chunks: readonly Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/** Signatures of the zip records read here. */
const END_OF_DIRECTORY = 0x06054b50;
const ZIP64_END_LOCATOR = 0x07064b50;
const ZIP64_END_OF_DIRECTORY = 0x06064b50;
const DIRECTORY_ENTRY = 0x02014b50;

/** Bytes of the end of central directory record, before its comment. */
const END_BYTES = 22;

/**
 * The central directory, by member name. Its end record is looked for in the last 64 KiB (the
 * longest comment) from the end back; one whose comment reaches the end of the file is preferred
 * to one followed by other bytes.
 */
async function readDirectory(handle: FileHandle, size: number): Promise<Map<string, Listed>> {
  const tailLength = Math.min(size, END_BYTES + 0xffff + 20);
  const tail = await readAt(handle, size - tailLength, tailLength);
  const view = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  let end = -1;
  for (let at = tailLength - END_BYTES; at >= 0; at--) {
    if (view.getUint32(at, true) !== END_OF_DIRECTORY) continue;
    if (end < 0) end = at;
    if (at + END_BYTES + view.getUint16(at + 20, true) === tailLength) {
      end = at;
      break;
    }
  }
  if (end < 0) {
    throw new ArchiveError('it has no end of central directory record (is it cut short?)');
  }

  let length = view.getUint32(end + 12, true);
  let offset = view.getUint32(end + 16, true);
  const locator = end - 20;
  if (locator >= 0 && view.getUint32(locator, true) === ZIP64_END_LOCATOR) {
    const at = Number(view.getBigUint64(locator + 8, true));
    if (at + 56 > size) throw new ArchiveError('its zip64 end record lies outside the file');
    const record = await readAt(handle, at, 56);
    const zip64 = new DataView(record.buffer, record.byteOffset, record.byteLength);
    if (zip64.getUint32(0, true) !== ZIP64_END_OF_DIRECTORY) {
      throw new ArchiveError('its zip64 end record is not where its locator says');
    }
    length = Number(zip64.getBigUint64(40, true));
    offset = Number(zip64.getBigUint64(48, true));
  }
  if (offset + length > size) {
    throw new ArchiveError('its central directory lies outside the file');
  }
  return parseDirectory(await readAt(handle, offset, length));
}

/**
 * The entries of a central directory, read to its end whatever count the end record gives (as
 * Python's zipfile does, which writes numpy's archives).
 */
function parseDirectory(bytes: Uint8Array): Map<string, Listed> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const names = new TextDecoder();
  const listed = new Map<string, Listed>();
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    if (at + 46 > bytes.length || view.getUint32(at, true) !== DIRECTORY_ENTRY) {
      throw new ArchiveError(`entry ${i + 1} of its central directory is damaged`);
    }
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    const next = at + 46 + nameLength + extraLength + commentLength;
    if (next > bytes.length) {
      throw new ArchiveError(`its central directory ends inside entry ${i + 1}`);
    }
    const name = names.decode(bytes.subarray(at + 46, at + 46 + nameLength));
    let size = view.getUint32(at + 24, true);
    if (size === 0xffffffff) {
      // The zip64 extra field holds the size instead, first when the size is what it replaces.
      size = zip64Size(view, at + 46 + nameLength, extraLength) ?? size;
    }
    const crc = view.getUint32(at + 16, true);
    const count = (listed.get(name)?.count ?? 0) + 1;
    listed.set(name, { crc, size, count });
    at = next;
  }
  return listed;
}

/** The unzipped size of a zip64 extra field among the extra fields at `at`, if there is one. */
function zip64Size(view: DataView, at: number, length: number): number | undefined {
  for (let field = at; field + 4 <= at + length;) {
    const id = view.getUint16(field, true);
    const size = view.getUint16(field + 2, true);
    if (id === 0x0001 && size >= 8) return Number(view.getBigUint64(field + 4, true));
    field += 4 + size;
  }
  return undefined;
}

async function readAt(handle: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(out, done, length - done, position + done);
    if (bytesRead === 0) throw new ArchiveError('the file ended while it was read');
    done += bytesRead;
  }
  return out;
}

let crcTable: Uint32Array | undefined;

/**
 * CRC-32 as zip stores it, continuing from the CRC-32 of the bytes before (`value`); Node's native
 * one when it has it (20.15 and later).
 */
function crc32(bytes: Uint8Array, value: number): number {
  if (typeof zlib.crc32 === 'function') return zlib.crc32(bytes, value);
  if (crcTable === undefined) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = (value ^ 0xffffffff) >>> 0;
  for (let i = 0; i < bytes.length; i++) crc = crcTable[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
