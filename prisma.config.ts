// Prisma CLI configuration. The CLI is used offline for `prisma generate` and
// `prisma migrate diff` only; migrations are applied by `rekey migrate`
// (src/db/migrate.ts), which needs no schema engine at all.
import { PrismaPg } from '@prisma/adapter-pg';
import { defineConfig } from 'prisma/config';

export default defineConfig({
  schema: 'prisma/schema.prisma',
  experimental: { adapter: true },
  engine: 'js',
  adapter: () =>
    Promise.resolve(new PrismaPg({ connectionString: process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres' })),
});
