// The ESM entry: the same objects as index.js (one copy of the addon and its state), as named
// exports that do not depend on cjs-module-lexer reading index.js.
import gateway from './index.js';

export const {
  PostgresConnection,
  PostgresServer,
  createServer,
  hashMd5Password,
  md5,
  generateMd5Salt,
  createScramSha256Secret,
  createStartupMessage,
  FrontendMessageCode,
  BackendMessageCode,
} = gateway;
export default gateway;
