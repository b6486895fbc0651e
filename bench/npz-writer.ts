import { zipSync } from 'fflate';

/** One `.npy` file: a little-endian float32 matrix or a fixed-width unicode vector. */
export function npy(descr: string, shape: number[], body: Uint8Array): Uint8Array {
  const tuple = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${tuple}, }`;
  const unpadded = 10 + dict.length + 1;
  const header = dict + ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length + body.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(Buffer.from(header, 'latin1'), 10);
  out.set(body, 10 + header.length);
  return out;
}

export function floats(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

export function unicode(strings: readonly string[]): { descr: string; body: Uint8Array } {
  const width = Math.max(...strings.map((s) => s.length));
  const body = new Uint32Array(strings.length * width);
  strings.forEach((s, i) => [...s].forEach((ch, j) => (body[i * width + j] = ch.codePointAt(0)!)));
  return { descr: `<U${width}`, body: new Uint8Array(body.buffer) };
}

/** A BirdNET-Analyzer 1.5-style training cache (x_train, y_train, labels), uncompressed. */
export function trainingCacheBytes(
  x: Float32Array,
  y: Float32Array,
  dim: number,
  labels: readonly string[],
): Uint8Array {
  const rows = x.length / dim;
  const names = unicode(labels);
  return zipSync(
    {
      'x_train.npy': npy('<f4', [rows, dim], floats(x)),
      'y_train.npy': npy('<f4', [rows, labels.length], floats(y)),
      'labels.npy': npy(names.descr, [labels.length], names.body),
    },
    { level: 0 },
  );
}
