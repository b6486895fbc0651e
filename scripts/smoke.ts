import { of, lastValueFrom, tap, toArray } from 'rxjs';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '/work/main/src/train/backend';
import { load, upsample, mixup, smooth, train, evaluate } from '/work/main/src/streams';
(async () => {
  console.log(await initBackend());
  const base = tf.memory().numTensors;
  const seed = Number(process.argv[2] ?? 1);
  const events = await lastValueFrom(
    of('/work/shared/data/anuran-mfcc/Frogs_MFCCs.csv').pipe(
      load({ labelColumn: 'Species', seed }),
      tap((d) => console.log('rows', d.rows, d.dim, d.labels.length)),
      upsample({ ratio: 0.5, mode: 'smote' }),
      tap((d) => console.log('after upsample', d.rows)),
      mixup(true),
      smooth(true),
      train({ hiddenUnits: 512, loss: 'focal', epochs: Number(process.argv[3] ?? 50) }),
      tap((e) => {
        if (e.type === 'epoch')
          console.log(
            e.epoch,
            e.loss.toFixed(4),
            e.valLoss?.toFixed(4),
            e.valAuprc?.toFixed(4),
            e.seconds,
          );
      }),
      evaluate(),
      toArray(),
    ),
  );
  const r = events.at(-1)!;
  if (r.type === 'result') {
    console.log(
      r.result.stopReason,
      r.result.bestEpoch,
      'macroAP',
      r.evaluation.reports.validation!.macro.averagePrecision,
      'top1',
      r.evaluation.reports.validation!.top1,
    );
    r.result.model.dispose();
  }
  console.log('tensors', base, tf.memory().numTensors);
})();
