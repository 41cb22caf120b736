// Types of the ESM entry (index.mjs): the named exports of index.d.ts, and the whole module as
// the default export.
export * from './index.js';
import * as gateway from './index.js';
export default gateway;
