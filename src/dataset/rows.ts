/** A growing `[rows, dim]` float32 buffer, for readers that do not know the row count ahead. */
export class FloatRows {
  private data = new Float32Array(0);
  private length = 0;
  private dimension = 0;

  setDim(dim: number): void {
    this.dimension = dim;
  }

  get dim(): number {
    return this.dimension;
  }

  get rows(): number {
    return this.dimension === 0 ? 0 : this.length / this.dimension;
  }

  push(values: ArrayLike<number>): void {
    if (values.length !== this.dimension) {
      throw new Error(`expected ${this.dimension} values, found ${values.length}`);
    }
    if (this.length + values.length > this.data.length) {
      const grown = new Float32Array(Math.max(1024, (this.length + values.length) * 2));
      grown.set(this.data.subarray(0, this.length));
      this.data = grown;
    }
    this.data.set(values, this.length);
    this.length += values.length;
  }

  /** The rows so far, in an array of exactly their size. */
  toArray(): Float32Array {
    return this.data.slice(0, this.length);
  }
}
