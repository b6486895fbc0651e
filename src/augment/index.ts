export * from './nearest';
export * from './upsample';
export * from './mixup';
export * from './smooth';
