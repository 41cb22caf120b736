#!/usr/bin/env node
'use strict';
// The pg-gateway-native command. One subcommand for now: serve (PGlite for many clients).

const [command, ...args] = process.argv.slice(2);

const USAGE = `Usage: pg-gateway-native <command> [options]

Commands:
  serve     serve PGlite (PostgreSQL in WebAssembly) to many clients at once

Run 'pg-gateway-native serve --help' for its options.`;

if (command === 'serve') {
  require('../lib/serve/cli.js').main(args).catch((err) => {
    process.stderr.write(`pg-gateway-native: ${err.stack ?? err}\n`);
    process.exit(1);
  });
} else if (command === '--version' || command === '-v') {
  process.stdout.write(`pg-gateway-native ${require('../package.json').version}\n`);
} else if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
  process.stdout.write(`${USAGE}\n`);
} else {
  process.stderr.write(`pg-gateway-native: unknown command '${command}'\n\n${USAGE}\n`);
  process.exitCode = 2;
}
