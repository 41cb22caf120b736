// A knex migration as a project writes one: a table, an index, a foreign key, seed rows.
exports.up = async (knex) => {
  await knex.schema.createTable('authors', (table) => {
    table.increments('id');
    table.string('name').notNullable().unique();
    table.timestamps(true, true);
  });
  await knex.schema.createTable('books', (table) => {
    table.increments('id');
    table.integer('author_id').references('authors.id').onDelete('CASCADE');
    table.string('title').notNullable();
    table.index(['author_id']);
  });
  await knex('authors').insert([{ name: 'Le Guin' }, { name: 'Lem' }]);
};

exports.down = async (knex) => {
  await knex.schema.dropTable('books');
  await knex.schema.dropTable('authors');
};
