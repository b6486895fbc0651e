import { UPSAMPLING_MODES, UpsamplingMode } from './augment/upsample';
import { DEFAULT_SEED, DEFAULT_VALIDATION_SPLIT } from './dataset/load';
import { DEFAULT_TRAIN_OPTIONS, TrainOptions } from './train/trainer';

/** Every setting of a training run: the hyperparameters of BirdNET-Analyzer and ours. */
export interface RunSettings extends TrainOptions {
  validationSplit: number;
  seed: number;
  upsamplingRatio: number;
  upsamplingMode: UpsamplingMode;
  mixup: boolean;
  labelSmoothing: boolean;
  labelSmoothingAlpha: number;
}

export const DEFAULT_SETTINGS: Readonly<RunSettings> = Object.freeze({
  ...DEFAULT_TRAIN_OPTIONS,
  validationSplit: DEFAULT_VALIDATION_SPLIT,
  seed: DEFAULT_SEED,
  upsamplingRatio: 0,
  upsamplingMode: 'repeat',
  mixup: false,
  labelSmoothing: false,
  labelSmoothingAlpha: 0.1,
});

export { UPSAMPLING_MODES };

/** The settings as `Parameter,Value` rows, named as BirdNET-Analyzer names them where it can. */
export function settingsTable(
  s: RunSettings,
  backend: string,
): Record<string, string | number | boolean> {
  return {
    'Hidden units': s.hiddenUnits,
    Dropout: s.dropout,
    Epochs: s.epochs,
    'Batch size': s.batchSize,
    'Learning rate': s.learningRate,
    'Validation split': s.validationSplit,
    'Upsampling ratio': s.upsamplingRatio,
    'Upsampling mode': s.upsamplingMode,
    'Use mixup': s.mixup,
    'Use label smoothing': s.labelSmoothing,
    'Label smoothing alpha': s.labelSmoothingAlpha,
    'Use focal loss': s.loss === 'focal',
    'Focal loss gamma': s.focalGamma,
    'Focal loss alpha': s.focalAlpha,
    'L2 factor': s.l2,
    Optimizer: 'AdamW',
    'Weight decay': s.weightDecay,
    Seed: s.seed,
    Backend: backend,
  };
}
