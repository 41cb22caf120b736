'use strict';
// pg-gateway-native: pg-gateway 0.2.4's API on a Rust protocol core. See README.md.

const { PostgresConnection } = require('./lib/connection.js');
const { PostgresServer, createServer } = require('./lib/server.js');
const {
  hashMd5Password, md5, generateMd5Salt, createScramSha256Secret, createStartupMessage, FrontendMessageCode,
  BackendMessageCode,
} = require('./lib/helpers.js');

module.exports = {
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
};
