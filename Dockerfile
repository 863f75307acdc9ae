# syntax=docker/dockerfile:1
# meli-proxy container image: `docker build -t meli-proxy:local .`
# Three stages: `build` compiles TypeScript with the dev dependencies, `deps` installs the production
# dependencies only, the final image holds those two results and nothing else (no compiler, no npm
# cache, no sources), runs as a non-root user and starts `meli-proxy serve`.
# Node 24, the current LTS (Node 20 reached its end of life).
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build before the sources are copied.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    MELI_PROXY_HOST=0.0.0.0 \
    MELI_PROXY_DATA_DIR=/tmp/meli-proxy
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
# The image's `node` user, by number so Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 8080 8081
# Liveness of the process on the proxy port (MELI_PROXY_PORT when set, else 8080).
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.MELI_PROXY_PORT||8080)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "bin/meli-proxy.js"]
CMD ["serve"]
