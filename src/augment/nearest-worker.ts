/**
 * The worker thread of nearest-neighbour searches: takes chunks of each search it is sent, on its
 * own TF.js backend, and posts back the candidates it kept.
 */
import { parentPort, workerData } from 'worker_threads';
import { BackendName, initBackend } from '../train/backend';
import { ChunkSearch, SearchJob } from './nearest';

const ready = initBackend({ prefer: (workerData as { backend: BackendName }).backend });

parentPort!.on('message', ({ id, job }: { id: number; job: SearchJob }) => {
  ready
    .then(async () => {
      const search = new ChunkSearch(job);
      try {
        await search.runShared(false);
        const kept = search.kept();
        const buffers = [kept.positions.buffer, kept.counts.buffer] as ArrayBuffer[];
        parentPort!.postMessage({ id, kept }, buffers);
      } finally {
        search.dispose();
      }
    })
    .catch((err: Error) => parentPort!.postMessage({ id, error: err.message }));
});
