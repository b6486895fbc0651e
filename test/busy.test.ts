import { expect } from 'chai';
import { TestScheduler } from 'rxjs/testing';
import { Observable } from 'rxjs';
import { DropReason, whileBusy } from '../src/streams/busy';

/** Each run takes 5 frames and emits its item twice: at start and at the end. */
function runner(cold: (marbles: string, values?: Record<string, string>) => Observable<string>) {
  return (item: string) => cold(`x---(y|)`, { x: `${item}1`, y: `${item}2` });
}

describe('whileBusy', () => {
  let scheduler: TestScheduler;
  beforeEach(() => {
    scheduler = new TestScheduler((actual, expected) => {
      expect(actual).to.deep.equal(expected);
    });
  });

  it('should queue one input and let the newest replace a waiting one', () => {
    scheduler.run(({ cold, hot, expectObservable }) => {
      const drops: [string, DropReason][] = [];
      const input = hot('a-b-c------|');
      const out = input.pipe(
        whileBusy('queue', runner(cold), { onDrop: (item, why) => drops.push([item, why]) }),
      );
      // a runs 0-4; b waits, then c replaces it; c runs 4-8; the input completes at 11.
      // A group such as (BC) stands at its first frame and spans as many frames as it has characters.
      expectObservable(out).toBe('A---(BC)D--|', { A: 'a1', B: 'a2', C: 'c1', D: 'c2' });
      scheduler.flush();
      expect(drops).to.deep.equal([['b', 'replaced']]);
    });
  });

  it('should keep up to queueLength inputs waiting, in order', () => {
    scheduler.run(({ cold, hot, expectObservable }) => {
      const drops: string[] = [];
      const out = hot('abcd--------------|').pipe(
        whileBusy('queue', runner(cold), { queueLength: 2, onDrop: (item) => drops.push(item) }),
      );
      // a runs 0-4; b is dropped when d arrives (queue c, d); c runs 4-8, d runs 8-12.
      expectObservable(out).toBe('a---(bc)(de)f-----|', {
        a: 'a1',
        b: 'a2',
        c: 'c1',
        d: 'c2',
        e: 'd1',
        f: 'd2',
      });
      scheduler.flush();
      expect(drops).to.deep.equal(['b']);
    });
  });

  it('should cancel the run in progress and start the newest with restart', () => {
    scheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const drops: [string, DropReason][] = [];
      const runs: Record<string, ReturnType<typeof cold>> = {};
      const out = hot('a-b-c-----|').pipe(
        whileBusy(
          'restart',
          (item) => (runs[item] = cold('x---(y|)', { x: `${item}1`, y: `${item}2` })),
          { onDrop: (item, why) => drops.push([item, why]) },
        ),
      );
      expectObservable(out).toBe('A-B-C---D-|', { A: 'a1', B: 'b1', C: 'c1', D: 'c2' });
      scheduler.flush();
      expectSubscriptions(runs.a.subscriptions).toBe('^-!');
      expect(drops).to.deep.equal([
        ['a', 'restarted'],
        ['b', 'restarted'],
      ]);
    });
  });

  it('should drop inputs that arrive while busy with ignore', () => {
    scheduler.run(({ cold, hot, expectObservable }) => {
      const drops: [string, DropReason][] = [];
      const out = hot('a-b-c-d---|').pipe(
        whileBusy('ignore', runner(cold), { onDrop: (item, why) => drops.push([item, why]) }),
      );
      // a runs 0-4; b and c are dropped; d starts at 6, after a ended at 4.
      expectObservable(out).toBe('A---B-C---(D|)', { A: 'a1', B: 'a2', C: 'd1', D: 'd2' });
      scheduler.flush();
      expect(drops).to.deep.equal([
        ['b', 'ignored'],
        ['c', 'ignored'],
      ]);
    });
  });

  it('should cancel the run in progress and forget waiting inputs on unsubscribe', () => {
    scheduler.run(({ cold, hot, expectObservable }) => {
      const run = cold('x---(y|)');
      const out = hot('ab----').pipe(whileBusy('queue', () => run));
      expectObservable(out, '^-!').toBe('x-');
      scheduler.flush();
      expect(run.subscriptions.map((s) => s.unsubscribedFrame)).to.deep.equal([2]);
    });
  });

  it('should refuse a queue length below 1', () => {
    expect(() => whileBusy('queue', () => new Observable(), { queueLength: 0 })).to.throw(
      'queue length: expected an integer >= 1, got 0',
    );
  });
});
