# syntax=docker/dockerfile:1
#
# The gateway as one compiled executable on a minimal glibc image.
#
#   docker build -t llm-gateway:latest .
#   docker compose up -d                      (compose.yml: ports, volumes, secrets)
#
# tests/docker_test.ts checks this file against the code (env vars, paths, port, health check,
# Deno version, user), since no Docker engine runs on the build machines.

# ---- build: compile main.ts into one self-contained executable ------------------------------
# The official Deno image at the version the project uses (README, .ci/run).
FROM denoland/deno:2.9.6 AS build
WORKDIR /build
# Manifests first: the npm download layer is reused until deno.json or deno.lock change.
COPY deno.json deno.lock ./
RUN deno install --frozen
COPY main.ts models.json ./
COPY lib/ ./lib/
# `deno task compile` bakes --unstable-kv, --unstable-net and every permission into
# dist/llm-gateway (--allow-run: with WORKERS it starts itself again as its workers), and embeds
# models.json as the fallback registry. It downloads Deno's `denort` runtime on first use.
# /state/data becomes the KV volume: created here because the runtime image has no mkdir.
RUN deno task compile \
 && mkdir -p /state/data

# ---- runtime -----------------------------------------------------------------------------------
# distroless "cc": glibc, libgcc/libstdc++, CA certificates and /etc/passwd with a `nonroot`
# user (uid 65532), nothing else: no shell, no package manager. That is all a `deno compile`
# executable needs (it is linked against glibc, so no Alpine/musl; time zones come from the ICU
# data inside the binary, so no tzdata). debian:bookworm-slim would work too, but adds a shell
# and ~75 MB that the gateway never uses. No shell means exec-form commands only, including the
# health check, which is the binary's own `healthcheck` command.
FROM gcr.io/distroless/cc-debian12:nonroot
WORKDIR /app
COPY --from=build /build/dist/llm-gateway /app/llm-gateway
# The bundled registry; compose.yml mounts the host's models.json over it (read-only).
COPY models.json /app/models.json
# /app/data owned by the runtime user, so the KV volume is writable (a named volume starts as a
# copy of it; a bind mount keeps the host folder's owner: see compose.yml).
COPY --from=build --chown=65532:65532 /state/ /app/
ENV KV_PATH=/app/data/gateway.kv
VOLUME /app/data
EXPOSE 8180
# Numeric, so Kubernetes' runAsNonRoot can verify it; 65532 is distroless' `nonroot`.
USER 65532:65532
HEALTHCHECK --interval=30s --timeout=10s --start-period=15s --retries=3 \
  CMD ["/app/llm-gateway", "healthcheck"]
# Exec form: the gateway is PID 1 and gets SIGTERM itself (graceful shutdown) and SIGHUP
# (reload models.json); with WORKERS it passes both on to its workers.
ENTRYPOINT ["/app/llm-gateway"]
CMD ["serve"]
