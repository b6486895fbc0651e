import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Unzip, unzipSync, Zip, ZipPassThrough, zipSync } from 'fflate';
import { floats, npy, trainingCacheBytes, unicode } from '../bench/npz-writer';
import { readTrainingCache, TrainingCache } from '../src/dataset/npz';
import { PickleRefusedError, unpickleStringArray } from '../src/dataset/pickle';

// The fixtures and expected.json come from test/fixtures/npz/make_fixtures.py (real numpy).
const FIXTURES = join(__dirname, 'fixtures', 'npz');

interface Expected {
  labels: string[];
  dim: number;
  xTrainShape: [number, number];
  xTrain: number[];
  yTrain: number[];
  xTestShape?: [number, number];
  xTest?: number[];
  yTest?: number[];
}

const expected = JSON.parse(readFileSync(join(FIXTURES, 'expected.json'), 'utf-8')) as Record<
  string,
  Expected
>;

/** Files the evil pickles would create if anything ran them (see make_fixtures.py). */
const PWNED = ['/tmp/pwned-by-npz', '/tmp/pwned-by-npz-eval'];

function fixture(name: string): string {
  return join(FIXTURES, name);
}

async function refusal(path: string): Promise<Error> {
  try {
    await readTrainingCache(path);
  } catch (err) {
    return err as Error;
  }
  throw new Error(`expected ${path} to be refused`);
}

/** Values as numpy wrote them, rounded to float32 as the reader stores them. */
function float32(values: number[]): number[] {
  return values.map(Math.fround);
}

function expectMatches(cache: TrainingCache, want: Expected): void {
  const [rows, dim] = want.xTrainShape;
  expect(cache.labels).to.deep.equal(want.labels);
  expect(cache.dim).to.equal(dim);
  expect(cache.xTrain.length).to.equal(rows * dim);
  expect(cache.yTrain.length).to.equal(rows * want.labels.length);
  expect(Array.from(cache.xTrain)).to.deep.equal(float32(want.xTrain));
  expect(Array.from(cache.yTrain)).to.deep.equal(float32(want.yTrain));
  if (want.xTest === undefined || want.yTest === undefined) {
    expect(cache.xTest).to.equal(undefined);
    expect(cache.yTest).to.equal(undefined);
  } else {
    expect(Array.from(cache.xTest ?? [])).to.deep.equal(float32(want.xTest));
    expect(Array.from(cache.yTest ?? [])).to.deep.equal(float32(want.yTest));
  }
}

/** The unzipped size the central directory of the archive at `path` records for `member`. */
function readUInt32(path: string, member: string): number {
  const bytes = readFileSync(path);
  return bytes.readUInt32LE(bytes.lastIndexOf(Buffer.from(member)) - 46 + 24);
}

describe('readTrainingCache', () => {
  let scratch: string;

  before(() => {
    scratch = mkdtempSync(join(tmpdir(), 'npz-test-'));
  });

  after(() => {
    rmSync(scratch, { recursive: true, force: true });
  });

  it('should read a 2.x cache (np.savez, pickled object labels, test arrays)', async () => {
    const cache = await readTrainingCache(fixture('cache-2x.npz'));

    expectMatches(cache, expected['cache-2x.npz']);
    expect(cache.labels).to.deep.equal([
      'Junco hyemalis_Dark-eyed Junco',
      'Poecile rufescens_Chestnut-backed Chickadee',
      "Bewick's Wren",
    ]);
    expect(cache.xTrain.length).to.equal(12 * 8);
    expect(cache.xTest?.length).to.equal(4 * 8);
    expect(Array.from(cache.yTrain)).to.include(-1);
  });

  it('should read labels pickled with protocol 2 (_codecs.encode) and 5 (numpy.str_)', async () => {
    for (const name of ['cache-2x-p2.npz', 'cache-2x-p5.npz']) {
      expectMatches(await readTrainingCache(fixture(name)), expected[name]);
    }
  });

  it('should read a 1.5 cache (np.savez_compressed, unicode labels, no test arrays)', async () => {
    const cache = await readTrainingCache(fixture('cache-15.npz'));

    expectMatches(cache, expected['cache-15.npz']);
    expect(cache.xTrain.length).to.equal(10 * 8);
  });

  it('should treat the empty test arrays of a compressed 2.x cache as no test set', async () => {
    expectMatches(
      await readTrainingCache(fixture('cache-2x-notest.npz')),
      expected['cache-2x-notest.npz'],
    );
  });

  it('should convert float64 x, int64 y and bool y to float32', async () => {
    const cache = await readTrainingCache(fixture('cache-dtypes.npz'));

    expectMatches(cache, expected['cache-dtypes.npz']);
    expect(cache.yTrain[1 * 3 + 2]).to.equal(-1);
  });

  describe('with a pickle that would run code', () => {
    beforeEach(() => {
      for (const file of PWNED) rmSync(file, { force: true });
    });

    it('should refuse os.system, naming the file, labels and the callable', async () => {
      const path = fixture('cache-evil.npz');

      const err = await refusal(path);

      expect(err).to.be.instanceOf(PickleRefusedError);
      expect(err.message).to.include(path);
      expect(err.message).to.include('labels');
      expect(err.message).to.match(/os\.system/);
      expect(err.message).to.include('refusing');
      expect(existsSync(PWNED[0])).to.equal(false);
    });

    it('should refuse builtins.eval, naming the file, labels and the callable', async () => {
      const path = fixture('cache-evil-eval.npz');

      const err = await refusal(path);

      expect(err).to.be.instanceOf(PickleRefusedError);
      expect(err.message).to.include(path);
      expect(err.message).to.include('labels');
      expect(err.message).to.include('builtins.eval');
      expect(existsSync(PWNED[1])).to.equal(false);
    });
  });

  it('should refuse an object array holding anything but strings', async () => {
    const err = await refusal(fixture('cache-nonstring.npz'));

    expect(err.message).to.include('labels');
    expect(err.message).to.include('index 1');
  });

  it('should name the file when the zip is truncated or not a zip', async () => {
    const whole = readFileSync(fixture('cache-2x.npz'));
    const truncated = join(scratch, 'truncated.npz');
    const garbage = join(scratch, 'garbage.npz');
    writeFileSync(truncated, whole.subarray(0, Math.floor(whole.length / 2)));
    writeFileSync(garbage, Buffer.from('this is not a zip archive at all, just text\n'));

    for (const path of [truncated, garbage]) {
      const err = await refusal(path);
      expect(err.message).to.include(path);
      expect(err.message).to.include('zip');
    }
  });

  it('should refuse a member whose bytes no longer match its CRC-32', async () => {
    const bytes = Buffer.from(readFileSync(fixture('cache-2x.npz')));
    const member = bytes.indexOf(Buffer.from('x_train.npy'));
    const payload = bytes.indexOf(Buffer.from('\x93NUMPY', 'latin1'), member) + 128;
    bytes[payload + 10] ^= 0x01;
    const flipped = join(scratch, 'flipped.npz');
    writeFileSync(flipped, bytes);

    const err = await refusal(flipped);

    expect(err.message).to.include(flipped);
    expect(err.message).to.match(/x_train\.npy fails its CRC-32 check/);
  });

  it('should unzip a large cache a few megabytes at a time, the loop turning between', async () => {
    // 10,000 x 1024 float32: 41 MB stored, so at least five turns of 8 MiB.
    const [rows, dim] = [10000, 1024];
    const x = Float32Array.from({ length: rows * dim }, (_, i) => (i % 4099) - 2049);
    const y = Float32Array.from({ length: rows * 2 }, (_, i) => ((i >> 1) % 2 === i % 2 ? 1 : 0));
    const path = join(scratch, 'large.npz');
    writeFileSync(path, trainingCacheBytes(x, y, dim, ['a', 'b']));
    // Turns of the event loop so far, counted by a callback that queues itself again.
    let turns = 0;
    let counting = true;
    const tick = () => {
      turns++;
      if (counting) setImmediate(tick);
    };
    setImmediate(tick);
    // Bytes handed to the unzipper in each turn of the loop (fflate's push also calls itself).
    const perTurn = new Map<number, number>();
    const push = Unzip.prototype.push;
    let depth = 0;
    Unzip.prototype.push = function (this: Unzip, ...args: Parameters<Unzip['push']>) {
      if (depth++ === 0) perTurn.set(turns, (perTurn.get(turns) ?? 0) + args[0].length);
      try {
        return push.apply(this, args);
      } finally {
        depth--;
      }
    };
    try {
      const cache = await readTrainingCache(path);
      expect(cache.xTrain).to.deep.equal(x);
      expect(cache.yTrain).to.deep.equal(y);
    } finally {
      Unzip.prototype.push = push;
      counting = false;
    }
    expect(perTurn.size).to.be.at.least(5);
    // Stored members: what goes in comes out. 8 MiB a turn, and the piece that reached it.
    expect(Math.max(...perTurn.values())).to.be.at.most(8 * 2 ** 20 + 64 * 2 ** 10);
  });

  it('should read a cache zipped as a stream, whose sizes follow each member', async () => {
    const x = Float32Array.of(1, 2, 3, 4, 5, 6);
    const y = Float32Array.of(1, 0, 0, 1, 1, 0);
    const names = unicode(['frog', 'toad']);
    const members: [string, Uint8Array][] = [
      ['x_train.npy', npy('<f4', [3, 2], floats(x))],
      ['y_train.npy', npy('<f4', [3, 2], floats(y))],
      ['labels.npy', npy(names.descr, [2], names.body)],
    ];
    const parts: Uint8Array[] = [];
    const zip = new Zip((err, data) => {
      if (err) throw err;
      parts.push(data);
    });
    for (const [name, bytes] of members) {
      const file = new ZipPassThrough(name);
      zip.add(file);
      // Two pushes, so that no size is known when the member's header is written.
      file.push(bytes.subarray(0, 40));
      file.push(bytes.subarray(40), true);
    }
    zip.end();
    const path = join(scratch, 'streamed.npz');
    writeFileSync(path, Buffer.concat(parts));

    const cache = await readTrainingCache(path);
    expect(cache.labels).to.deep.equal(['frog', 'toad']);
    expect(cache.xTrain).to.deep.equal(x);
    expect(cache.yTrain).to.deep.equal(y);
  });

  describe('with a damaged or unusual archive', () => {
    /** cache-2x.npz (np.savez: stored members) with `change` applied to a copy of its bytes. */
    function damaged(name: string, change: (bytes: Buffer) => void): string {
      const bytes = Buffer.from(readFileSync(fixture('cache-2x.npz')));
      change(bytes);
      const path = join(scratch, name);
      writeFileSync(path, bytes);
      return path;
    }
    /** Where a member's local header starts. */
    const local = (bytes: Buffer, member: string) => bytes.indexOf(Buffer.from(member)) - 30;

    it('should refuse a member cut short or running past its recorded size', async () => {
      // A stored member's local header says how many bytes it spans.
      const shorter = damaged('cut.npz', (bytes) => {
        const header = local(bytes, 'x_train.npy');
        expect(bytes.readUInt32LE(header)).to.equal(0x04034b50);
        bytes.writeUInt32LE(bytes.readUInt32LE(header + 18) - 4, header + 18);
      });
      const longer = damaged('past.npz', (bytes) => {
        const header = local(bytes, 'x_train.npy');
        bytes.writeUInt32LE(bytes.readUInt32LE(header + 18) + 4, header + 18);
      });
      const size = readUInt32(fixture('cache-2x.npz'), 'x_train.npy');
      expect((await refusal(shorter)).message).to.include(
        `x_train.npy ends after ${size - 4} of the ${size} bytes`,
      );
      expect((await refusal(longer)).message).to.include(
        `x_train.npy holds more than the ${size} bytes its central directory entry records`,
      );
    });

    it('should refuse a member whose data cannot be found where its directory lists it', async () => {
      // One bit in x_test.npy's local extra-field length hides the member from the reader.
      const path = damaged('hidden.npz', (bytes) => {
        const header = local(bytes, 'x_test.npy');
        bytes.writeUInt16LE(bytes.readUInt16LE(header + 28) + 32768, header + 28);
      });
      const err = await refusal(path);
      expect(err.message).to.include(path);
      expect(err.message).to.include('x_test.npy');
    });

    it('should refuse a compression method other than stored or deflated', async () => {
      const path = damaged('bzip2.npz', (bytes) => {
        const header = local(bytes, 'x_train.npy');
        bytes.writeUInt16LE(12, header + 8);
      });
      const err = await refusal(path);
      expect(err.message).to.include('x_train.npy is compressed with method 12');
    });

    it('should refuse, before unzipping it, a small array followed by megabytes of zeros', async () => {
      // 10 MiB of zeros deflate to about 10 KiB; the directory records them, the header not.
      const array = npy('<f4', [2, 2], floats(Float32Array.of(1, 2, 3, 4)));
      const padded = new Uint8Array(array.length + 10 * 2 ** 20);
      padded.set(array);
      const names = unicode(['a', 'b']);
      const path = join(scratch, 'padded.npz');
      writeFileSync(
        path,
        zipSync({
          'x_train.npy': [padded, { level: 9 }],
          'y_train.npy': npy('<f4', [2, 2], floats(Float32Array.of(1, 0, 0, 1))),
          'labels.npy': npy(names.descr, [2], names.body),
        }),
      );
      const err = await refusal(path);
      expect(err.message).to.include(`x_train holds ${10 * 2 ** 20} bytes after its array`);
    });

    it('should name the path of a folder or a missing file', async () => {
      for (const path of [scratch, join(scratch, 'absent.npz')]) {
        const err = await refusal(path);
        expect(err.message).to.include(`training cache ${path}: cannot read it`);
      }
    });
  });

  it('should read class names stored as bytes and name a float64 beyond float32', async () => {
    const names = ['frog', 'grenouille'];
    const bytes = new Uint8Array(2 * 10);
    names.forEach((name, i) => bytes.set(Buffer.from(name), i * 10));
    const big = new Float64Array([1, 2, 3, 1e300]);
    const archive = (x: Uint8Array, descr: string) =>
      zipSync({
        'x_train.npy': npy(descr, [2, 2], x),
        'y_train.npy': npy('<f4', [2, 2], floats(Float32Array.of(1, 0, 0, 1))),
        'labels.npy': npy('|S10', [2], bytes),
      });
    const path = join(scratch, 'bytes.npz');
    writeFileSync(path, archive(floats(Float32Array.of(1, 2, 3, 4)), '<f4'));
    expect((await readTrainingCache(path)).labels).to.deep.equal(names);

    writeFileSync(path, archive(new Uint8Array(big.buffer), '<f8'));
    const err = await refusal(path);
    expect(err.message).to.include('x_train holds 1e+300 at row 1, column 1');
    expect(err.message).to.include("within float32's range");
  });

  it('should name each field that is missing or disagrees', async () => {
    const cases: [string, RegExp][] = [
      ['cache-missing-x.npz', /x_train is missing/],
      ['cache-rows.npz', /y_train has 3 rows but x_train has 4/],
      ['cache-columns.npz', /y_train has 3 columns but labels has 2/],
      ['cache-nan.npz', /x_train holds NaN at row 2, column 5/],
      ['cache-fortran.npz', /x_train is stored in Fortran/],
      ['cache-bigendian.npz', /x_train is big-endian \(>f4\)/],
    ];
    for (const [name, message] of cases) {
      const err = await refusal(fixture(name));
      expect(err.message, name).to.include(fixture(name));
      expect(err.message, name).to.match(message);
    }
  });
});

describe('unpickleStringArray', () => {
  // The protocol 3 pickle numpy wrote for the labels of cache-2x.npz.
  const npy = unzipSync(readFileSync(fixture('cache-2x.npz')))['labels.npy'];
  const pickle = npy.subarray(10 + (npy[8] | (npy[9] << 8)));
  const what = 'labels from test.npz';

  function refusedWith(bytes: Uint8Array): string {
    expect(() => unpickleStringArray(bytes, what)).to.throw(PickleRefusedError);
    try {
      unpickleStringArray(bytes, what);
    } catch (err) {
      return (err as Error).message;
    }
    return '';
  }

  it('should return the strings of the array in stored order', () => {
    expect(unpickleStringArray(pickle, what)).to.deep.equal(expected['cache-2x.npz'].labels);
  });

  it('should refuse a truncated pickle', () => {
    expect(refusedWith(pickle.subarray(0, pickle.length - 20))).to.match(/ends early/);
  });

  it('should refuse an opcode it does not run, before anything else happens', () => {
    // Protocol 2 INST: imports os.system and calls it with the marked arguments.
    const inst = Buffer.from('\x80\x02(X\x02\x00\x00\x00idios\nsystem\n.', 'latin1');

    expect(refusedWith(inst)).to.match(/opcode 0x69/);
  });

  it('should refuse a global named through STACK_GLOBAL', () => {
    const name = (s: string) => Buffer.concat([Buffer.from([0x8c, s.length]), Buffer.from(s)]);
    const stackGlobal = Buffer.concat([
      Buffer.from([0x80, 0x04]),
      name('subprocess'),
      name('Popen'),
      Buffer.from([0x93, 0x2e]),
    ]);

    expect(refusedWith(stackGlobal)).to.include('subprocess.Popen');
  });

  it('should refuse a pickle of a plain list instead of a numpy array', () => {
    // EMPTY_LIST, SHORT_BINUNICODE 'a', APPEND, STOP
    const list = Buffer.from([0x80, 0x03, 0x5d, 0x8c, 0x01, 0x61, 0x61, 0x2e]);

    expect(refusedWith(list)).to.include('not a numpy array');
  });
});
