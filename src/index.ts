export * from './dataset/dataset';
export { loadDataSet, LoadOptions } from './dataset/load';
export { readEmbeddingsText, readEmbeddingsFolder } from './dataset/embeddings';
export { readTable, TableOptions } from './dataset/table';
export { readTrainingCache, TrainingCache } from './dataset/npz';
export {
  upsample as upsampleDataSet,
  mixup as mixupDataSet,
  smoothLabels,
  UpsamplingMode,
  UpsampleOptions,
} from './augment';
export {
  evaluate as evaluateScores,
  averagePrecision,
  rocAuc,
  confusionAt,
  bestF1Threshold,
  macroAuprc,
  macroAuroc,
  THRESHOLD_GRID,
  ClassMetrics,
  EvaluationReport,
} from './evaluate/metrics';
export * from './evaluate/report';
export { initBackend, backendName, BACKENDS, BackendName } from './train/backend';
export {
  trainClassifier,
  TrainOptions,
  TrainResult,
  TrainEvent,
  EpochStats,
} from './train/trainer';
export { predictScores } from './train/model';
export * from './store/model-directory';
export * from './streams';
export * from './settings';
export { Random } from './random';
