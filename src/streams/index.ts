export * from './load';
export * from './augment';
export * from './train';
export * from './evaluate';
export * from './save';
export * from './busy';
export * from './settle';
export * from './store';
