import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { TestScheduler } from 'rxjs/testing';
import { lastChangeUnder, settle } from '../src/streams/settle';

describe('settle', () => {
  let scheduler: TestScheduler;
  beforeEach(() => {
    scheduler = new TestScheduler((actual, expected) => {
      expect(actual).to.deep.equal(expected);
    });
  });

  it('should let one trigger of a burst through, quiet ms after the last change', () => {
    scheduler.run(({ hot, expectObservable }) => {
      // Writes at frames 1, 3 and 6; quiet period 5 frames; triggers at 0, 2, 4 and 6.
      const writes = [1, 3, 6];
      const lastChange = () => Math.max(0, ...writes.filter((w) => w <= scheduler.now()));
      const out = hot('a-b-c-d-------|').pipe(settle(5, lastChange, scheduler));
      // d at 6 sees the write at 6: it waits until 11; a, b and c were replaced.
      expectObservable(out).toBe('-----------d--|');
    });
  });

  it('should let a trigger through at once when nothing changed for the quiet period', () => {
    scheduler.run(({ hot, expectObservable }) => {
      const out = hot('------a---b|').pipe(settle(5, () => 0, scheduler));
      expectObservable(out).toBe('------a---b|');
    });
  });

  it('should wait again when a write lands during the wait', () => {
    scheduler.run(({ hot, expectObservable }) => {
      // One trigger at 0 after a write at 0; another write at 4 (during the wait until 5).
      const writes = [0, 4];
      const lastChange = () => Math.max(...writes.filter((w) => w <= scheduler.now()));
      const out = hot('a-----------|').pipe(settle(5, lastChange, scheduler));
      // At 5 the newest change is 4: wait until 9.
      expectObservable(out).toBe('---------a--|');
    });
  });

  it('should pass triggers through unchanged with a quiet period of 0', () => {
    scheduler.run(({ hot, expectObservable }) => {
      const out = hot('ab-c|').pipe(settle(0, () => 1e15, scheduler));
      expectObservable(out).toBe('ab-c|');
    });
  });

  it('should refuse a negative quiet period', () => {
    expect(() => settle(-1, () => 0)).to.throw(/quiet period in ms >= 0, got -1/);
  });
});

describe('lastChangeUnder', () => {
  it('should give the newest modification time below a folder, hidden files included', async () => {
    const root = mkdtempSync(join(tmpdir(), 'settle-'));
    try {
      mkdirSync(join(root, 'A'));
      writeFileSync(join(root, 'A', 'old.wav'), 'x');
      writeFileSync(join(root, 'A', '.partial.wav'), 'x');
      const at = (s: number) => new Date(s * 1000);
      utimesSync(join(root, 'A', 'old.wav'), at(1000), at(1000));
      utimesSync(join(root, 'A', '.partial.wav'), at(3000), at(3000));
      utimesSync(join(root, 'A'), at(2000), at(2000));
      utimesSync(root, at(500), at(500));
      expect(await lastChangeUnder(root)).to.equal(3000 * 1000);
      expect(await lastChangeUnder(join(root, 'A', 'old.wav'))).to.equal(1000 * 1000);
      expect(await lastChangeUnder(join(root, 'missing'))).to.equal(0);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
