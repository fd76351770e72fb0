# Neural Photo Editor: container images. Two final targets share one build stage:
#
#   docker build --target cpu -t ghcr.io/OWNER/neural-photo-editor:0.1.0-cpu .   # API, and wasm workers
#   docker build --target gpu -t ghcr.io/OWNER/neural-photo-editor:0.1.0-gpu .   # CUDA workers (tfjs-node-gpu)
#
# Both: ENTRYPOINT `node dist/cli/index.js`, CMD `api`; run a worker with the command `worker`
# (docker run IMAGE worker, compose `command: ["worker"]`, Kubernetes `args: ["worker"]`).
# Needs BuildKit (the default builder since Docker 23) for RUN --mount. linux/amd64 only:
# tfjs-node-gpu ships no other Linux build.
#
# Base images are pinned by version tag below. Pin them by digest too (reproducible builds, and a
# tag that is moved upstream cannot change the image); no digest is filled in here because none
# could be looked up where this file was written. Look them up and pass them:
#
#   docker buildx imagetools inspect node:20.20.2-bookworm-slim                 # "Digest: sha256:..."
#   docker buildx imagetools inspect nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04
#   docker build --build-arg NODE_DIGEST=sha256:... --build-arg CUDA_DIGEST=sha256:... --target gpu .
#
# With a digest the reference becomes `image:tag@sha256:...` (the digest wins; the tag documents it).
# A registry mirror: --build-arg NODE_IMAGE=registry.example/library/node
#                    --build-arg CUDA_IMAGE=registry.example/nvidia/cuda
#
# Network at build time (each can point at a mirror for air-gapped builds, see README "Deployment"):
#   - the npm registry (npm ci; set npm_config_registry through a build secret or .npmrc),
#   - gpu only: Ubuntu packages, the Node.js tarball (NODE_DIST_URL), and what the install script of
#     @tensorflow/tfjs-node-gpu downloads: libtensorflow 2.9.1 for GPU (TFJS_NODE_CDN_STORAGE or
#     TFJS_NODE_BASE_URI) and its prebuilt N-API addon (TFJS_BINDING_HOST_MIRROR), or both from
#     exact URLs through deploy/docker/tfjs-custom-binary.json (copied over the package's
#     scripts/custom-binary.json when present).

ARG NODE_VERSION=20.20.2
ARG NODE_IMAGE=node
ARG NODE_DIGEST=
# tfjs-node-gpu 4.22 loads libtensorflow 2.9.1, built for CUDA 11.2 + cuDNN 8.1: any CUDA 11.x
# runtime (minor-version compatible, libcudart.so.11.0) with cuDNN 8.x >= 8.1 works; CUDA 12 does not.
ARG CUDA_IMAGE=nvidia/cuda
ARG CUDA_TAG=11.8.0-cudnn8-runtime-ubuntu22.04
ARG CUDA_DIGEST=

# ---------------------------------------------------------------------------------------------
# Shared: install with dev dependencies, compile, prune to production dependencies.
FROM ${NODE_IMAGE}:${NODE_VERSION}-bookworm-slim${NODE_DIGEST:+@}${NODE_DIGEST} AS node-base

FROM node-base AS build
WORKDIR /app
ENV npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
COPY package.json package-lock.json ./
# --ignore-scripts: the optional @tensorflow/tfjs-node(-gpu) install scripts would download
# libtensorflow here; the gpu target runs the GPU one on its CUDA base below, the cpu target uses
# wasm. It also skips `prepare` (the build), which runs explicitly after the sources are in.
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts
COPY . .
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts \
 && rm -rf node_modules/@tensorflow/tfjs-node \
 && mkdir -p web models /out/deploy/docker \
 && cp -a package.json package-lock.json openapi.yaml dist node_modules web models /out/ \
 && cp deploy/docker/healthcheck.mjs /out/deploy/docker/ \
 && mkdir -p /out/tfjs-custom
# optional, for air-gapped gpu builds: exact libtensorflow / addon URLs (see the header)
RUN if [ -f deploy/docker/tfjs-custom-binary.json ]; then cp deploy/docker/tfjs-custom-binary.json /out/tfjs-custom/; fi

FROM build AS app-cpu
RUN rm -rf /out/node_modules/@tensorflow/tfjs-node-gpu /out/tfjs-custom

# ---------------------------------------------------------------------------------------------
# cpu: slim Node 20, WebAssembly backend. Runs the API (it never loads the weights in queue mode)
# and CPU workers for machines without a GPU.
FROM node-base AS cpu
ENV NODE_ENV=production \
    TFJS_BACKEND=wasm \
    MODEL_DIR=models/default
RUN groupadd --system --gid 10001 npe \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin npe
WORKDIR /app
# owned by root: the service user can read, not change, the code and the bundled model
COPY --from=app-cpu /out /app
USER 10001:10001
EXPOSE 8080 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "deploy/docker/healthcheck.mjs"]
ENTRYPOINT ["node", "dist/cli/index.js"]
CMD ["api"]

# ---------------------------------------------------------------------------------------------
# gpu: CUDA 11 + cuDNN 8 runtime, Node from the official tarball, tfjs-node-gpu built here.
FROM ${CUDA_IMAGE}:${CUDA_TAG}${CUDA_DIGEST:+@}${CUDA_DIGEST} AS cuda-base

FROM cuda-base AS node-dist
ARG NODE_VERSION
ARG NODE_DIST_URL=https://nodejs.org/dist
# optional: the tarball's SHA-256 (from SHASUMS256.txt, ideally its GPG-verified copy); without it
# the tarball is checked against SHASUMS256.txt fetched from NODE_DIST_URL
ARG NODE_SHA256=
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl xz-utils \
 && rm -rf /var/lib/apt/lists/*
RUN set -eux; \
    f="node-v${NODE_VERSION}-linux-x64.tar.xz"; \
    cd /tmp; \
    curl -fsSLO "${NODE_DIST_URL}/v${NODE_VERSION}/${f}"; \
    if [ -n "${NODE_SHA256}" ]; then \
      echo "${NODE_SHA256}  ${f}" | sha256sum -c -; \
    else \
      curl -fsSLO "${NODE_DIST_URL}/v${NODE_VERSION}/SHASUMS256.txt"; \
      grep " ${f}\$" SHASUMS256.txt | sha256sum -c -; \
    fi; \
    mkdir -p /opt/node; \
    tar -xJf "${f}" -C /opt/node --strip-components=1 --no-same-owner; \
    /opt/node/bin/node --version

FROM cuda-base AS gpu-deps
# node, npm and the headers (node-gyp builds the addon from source if its download fails)
COPY --from=node-dist /opt/node /usr/local/
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /out /app
ARG TFJS_NODE_CDN_STORAGE=
ARG TFJS_NODE_BASE_URI=
ARG TFJS_BINDING_HOST_MIRROR=
# Runs the install script of the lockfile's @tensorflow/tfjs-node-gpu (4.22.0, installed by npm ci
# above without scripts): downloads libtensorflow-gpu 2.9.1 and the tfjs_binding addon, then loads
# it once (no GPU needed to load; CUDA libraries are opened lazily) so a broken install fails here.
RUN set -eux; \
    if [ -f tfjs-custom/tfjs-custom-binary.json ]; then \
      cp tfjs-custom/tfjs-custom-binary.json node_modules/@tensorflow/tfjs-node-gpu/scripts/custom-binary.json; \
    fi; \
    rm -rf tfjs-custom; \
    TFJS_NODE_CDN_STORAGE="${TFJS_NODE_CDN_STORAGE}" \
    TFJS_NODE_BASE_URI="${TFJS_NODE_BASE_URI}" \
    npm_config_tfjs_binding_binary_host_mirror="${TFJS_BINDING_HOST_MIRROR}" \
    npm_config_nodedir=/usr/local \
      npm rebuild @tensorflow/tfjs-node-gpu --foreground-scripts; \
    node -e "require('@tensorflow/tfjs-node-gpu'); console.log('tfjs-node-gpu loads')"

FROM cuda-base AS gpu
# TF_FORCE_GPU_ALLOW_GROWTH: allocate GPU memory as needed (several processes can share a GPU).
# CUDA_CACHE_*: TF 2.9 ships kernels up to sm_75 plus compute_80 PTX, so on Ampere/Hopper the
# driver JIT-compiles PTX on first use (minutes; up to tens of minutes on H100). The compiled
# kernels land in CUDA_CACHE_PATH: mount a volume there to keep them across restarts. 4 GiB is
# the largest size the driver accepts (the default, 256 MiB, is too small for TensorFlow).
ENV NODE_ENV=production \
    TFJS_BACKEND=gpu \
    MODEL_DIR=models/default \
    TF_FORCE_GPU_ALLOW_GROWTH=true \
    TF_CPP_MIN_LOG_LEVEL=1 \
    CUDA_CACHE_PATH=/var/cache/cuda \
    CUDA_CACHE_MAXSIZE=4294967296
COPY --from=node-dist /opt/node/bin/node /usr/local/bin/node
RUN groupadd --system --gid 10001 npe \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin npe \
 && mkdir -p /var/cache/cuda \
 && chown 10001:10001 /var/cache/cuda
WORKDIR /app
COPY --from=gpu-deps /app /app
# mount a volume at /var/cache/cuda (compose: a named volume; Kubernetes: see deploy/k8s)
USER 10001:10001
EXPOSE 8080 9090
# start period: CUDA initialisation and loading the model (the PTX JIT happens on the first batch)
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
  CMD ["node", "deploy/docker/healthcheck.mjs"]
ENTRYPOINT ["node", "dist/cli/index.js"]
CMD ["api"]
