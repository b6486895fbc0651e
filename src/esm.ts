import { pathToFileURL } from 'url';

// Some libraries are ES modules only. TypeScript compiles `import()` to `require()` for CommonJS
// output, which cannot load them, so the import is built at run time instead. The file URL is
// resolved here because an import built this way resolves bare names from the working directory,
// not from this package.
const importUrl = new Function('url', 'return import(url)') as (url: string) => Promise<unknown>;

/** Loads an ES-module-only package installed beside this one, e.g. `importEsm('vega')`. */
export function importEsm<T>(name: string): Promise<T> {
  return importUrl(pathToFileURL(require.resolve(name)).href) as Promise<T>;
}

/** Remembers a library loaded on first use; a failed load is tried again next time. */
export function lazyEsm<T>(name: string): () => Promise<T> {
  let loading: Promise<T> | undefined;
  return () => {
    loading ??= importEsm<T>(name).catch((err: unknown) => {
      loading = undefined;
      throw err;
    });
    return loading;
  };
}
