/**
 * Where each wanted feature column sits among the columns a table has, matched by name:
 * `order[j]` is the column of `have` that holds `want[j]`. Undefined when either side has no
 * names (embeddings files, recordings, caches) or the columns already stand in the wanted order.
 *
 * @throws Error naming the columns one side has and the other lacks
 * @example
 * featureOrder(['b', 'a'], ['a', 'b'], 'test.csv'); // [1, 0]
 */
export function featureOrder(
  have: readonly string[] | undefined,
  want: readonly string[] | undefined,
  where: string,
): number[] | undefined {
  if (have === undefined || want === undefined) return undefined;
  const missing = want.filter((name) => !have.includes(name));
  const extra = have.filter((name) => !want.includes(name));
  if (missing.length > 0 || extra.length > 0) {
    const say = (names: string[]) => names.map((n) => `"${n}"`).join(', ');
    const parts = [
      missing.length > 0 ? `lacks ${say(missing)}` : '',
      extra.length > 0 ? `has ${say(extra)} besides` : '',
    ].filter((p) => p !== '');
    throw new Error(
      `${where}: its feature columns differ from the ones the model was trained on: it ` +
        `${parts.join(' and ')}; give it the same columns (${want.length} of them)`,
    );
  }
  const order = want.map((name) => have.indexOf(name));
  return order.every((column, j) => column === j) ? undefined : order;
}

/** `[rows, order.length]` values with column j taken from column `order[j]` of `x`. */
export function reorderColumns(
  x: Float32Array,
  dim: number,
  order: readonly number[],
): Float32Array {
  const rows = x.length / dim;
  const out = new Float32Array(rows * order.length);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < order.length; j++) out[r * order.length + j] = x[r * dim + order[j]];
  }
  return out;
}
