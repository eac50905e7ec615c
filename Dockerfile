# syntax=docker/dockerfile:1
# rekey's container image. Entrypoint: the `rekey` CLI, so Kubernetes runs
# `rekey worker`, `rekey server`, `rekey migrate` and `rekey apply` through `args`.
#   docker build -t REGISTRY/rekey:TAG .
#   docker run --rm REGISTRY/rekey:TAG --help
ARG NODE_IMAGE=node:22-bookworm-slim

# --- build: all dependencies, the Prisma client generated, TypeScript compiled -------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Prisma 6.19 generates the client in WebAssembly; pointing the engine variables at any
# existing file stops its CLI and install scripts from downloading native engines.
ENV PRISMA_QUERY_ENGINE_LIBRARY=/usr/local/bin/node \
    PRISMA_SCHEMA_ENGINE_BINARY=/usr/local/bin/node \
    PRISMA_HIDE_UPDATE_MESSAGE=1 \
    CHECKPOINT_DISABLE=1
COPY package.json package-lock.json prisma.config.ts ./
COPY prisma ./prisma
COPY scripts ./scripts
# postinstall runs `prisma generate` into src/db/generated, which the build compiles.
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY providers ./providers
RUN npm run build

# --- deps: production dependencies only ---------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: postinstall's `prisma generate` needs the dev-only Prisma CLI; the
# generated client is already compiled into dist/ by the build stage.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# --- runtime --------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="rekey" \
      org.opencontainers.image.description="Secrets rotation and leak-revocation orchestrator" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric uid/gid (10001) so Kubernetes' runAsNonRoot can verify it, and no package
# managers left to run at runtime.
RUN groupadd --system --gid 10001 rekey \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin rekey \
 && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
      /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
ENV NODE_ENV=production \
    NODE_OPTIONS=--enable-source-maps
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
# dist/ holds src/, providers/ and the generated Prisma client (dist/src/db/generated).
COPY --from=build /app/dist ./dist
# package.json: "type": "module", and how rekey finds its root (src/paths.ts).
# prisma/migrations: read at runtime by `rekey migrate`.
COPY package.json ./
COPY bin ./bin
COPY prisma/migrations ./prisma/migrations
USER 10001:10001
# `rekey server` listens on 8080, `rekey worker` serves /metrics and probes on 9464.
EXPOSE 8080 9464
ENTRYPOINT ["node", "/app/bin/rekey.js"]
CMD ["--help"]
