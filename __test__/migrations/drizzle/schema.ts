// A drizzle schema, in a Postgres schema of its own (the other migration tools of the test
// share `public`): `drizzle-kit push` creates it by reading the catalog and diffing.
import { pgSchema, serial, text, integer, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';

export const app = pgSchema('app');

export const role = app.enum('member_role', ['owner', 'member']);

export const teams = app.table('teams', {
  id: serial('id').primaryKey(),
  name: text('name').notNull(),
});

export const members = app.table('members', {
  id: serial('id').primaryKey(),
  teamId: integer('team_id').notNull().references(() => teams.id),
  email: text('email').notNull(),
  role: role('role').notNull().default('member'),
  joinedAt: timestamp('joined_at', { withTimezone: true }).defaultNow(),
}, (table) => [uniqueIndex('members_email').on(table.email)]);
