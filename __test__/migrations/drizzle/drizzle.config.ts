import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'postgresql',
  schema: './__test__/migrations/drizzle/schema.ts',
  schemaFilter: ['app'],
  dbCredentials: { url: process.env.DATABASE_URL! },
});
