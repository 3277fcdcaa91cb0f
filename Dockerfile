# The vineyardd image: the server, and etcd (Debian's etcd-server) for the etcd pod of
# deploy/kubernetes. Build from the repository root:
#   docker build -t vineyardcloudnative/vineyardd:latest .
# Stage 1 builds vineyardd alone (no tests, benchmarks or Python module).
FROM debian:bookworm AS build
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        build-essential pkg-config cmake ninja-build \
        libspdlog-dev nlohmann-json3-dev libgflags-dev libjemalloc-dev libzstd-dev \
        libcrypt-dev libasio-dev libssl-dev libre2-dev libcurl4-openssl-dev prometheus-cpp-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cpp ./cpp
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DVINEYARD_BUILD_TESTS=OFF -DVINEYARD_BUILD_BENCHMARKS=OFF -DVINEYARD_BUILD_PYTHON=OFF \
    && cmake --build build --target vineyardd

# Stage 2: the runtime libraries of vineyardd (ldd build/vineyardd), etcd, and the binary.
FROM debian:bookworm-slim
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        libcrypt1 libcurl4 libfmt9 libgflags2.2 libjemalloc2 libprometheus-cpp-core1.0 \
        libprometheus-cpp-pull1.0 libre2-9 libspdlog1.10 libssl3 libzstd1 ca-certificates \
        etcd-server \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/vineyardd /usr/local/bin/vineyardd
# 9600: RPC; 9601: Prometheus metrics (--metrics).
EXPOSE 9600 9601
ENTRYPOINT ["/usr/local/bin/vineyardd"]
CMD ["--socket=/var/run/vineyard/vineyard.sock", "--size=512Mi", "--meta=local"]
