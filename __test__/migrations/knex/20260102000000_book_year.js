exports.up = (knex) => knex.schema.alterTable('books', (table) => table.integer('year'));
exports.down = (knex) => knex.schema.alterTable('books', (table) => table.dropColumn('year'));
