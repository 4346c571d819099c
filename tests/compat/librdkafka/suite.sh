#!/usr/bin/env bash
# librdkafka's own test suite (the tests/ folder of the librdkafka source
# that the rdkafka-sys crate ships) against a running Conveyor.
#
#   suite.sh build SRC OUT
#       Copies the librdkafka source SRC to OUT/librdkafka and builds the
#       library and tests/test-runner there (no SSL, SASL or libcurl; zstd,
#       zlib and RapidJSON required), plus OUT/kafka/bin/kafka-topics.sh
#       (kafka-topics.c here). Cached: nothing is rebuilt while SRC,
#       kafka-topics.c and build_revision are unchanged. Safe to run
#       concurrently (flock).
#
#   suite.sh run OUT WORK BOOTSTRAP SCENARIO PARALLEL TEST...
#       Runs the named tests (full names from tests/test.c, e.g.
#       0001_multiobj) in test scenario SCENARIO, PARALLEL at a time, in
#       directory WORK, against the broker at BOOTSTRAP; prints each test's
#       result and passes (a line OK, exit 0) only when every named test
#       PASSED and none failed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

# The Kafka version whose behaviour Conveyor matches: its ApiVersions
# floors are the ones Kafka 4.0 kept (KIP-896: Fetch v4+, ListOffsets v1+,
# OffsetCommit v2+, ...) and its topic settings are Kafka 4's.
kafka_version=4.0.0

# Bump when the build steps below change, so cached builds are redone.
build_revision=1

die() {
    echo "suite.sh: $*" >&2
    exit 1
}

build() {
    local src=$1 out=$2
    [ -f "$src/tests/test.c" ] || die "$src is not a librdkafka source tree (no tests/test.c)"
    mkdir -p "$out"
    out=$(cd "$out" && pwd)
    exec 9>"$out/.lock"
    flock 9
    local version want
    version=$(sed -n 's/^#define RD_KAFKA_VERSION *\(0x[0-9a-fA-F]*\).*/\1/p' "$src/src/rdkafka.h")
    want="$src $version build $build_revision $(sha256sum <"$here/kafka-topics.c" | cut -c1-16)"
    if [ -x "$out/librdkafka/tests/test-runner" ] && [ -x "$out/kafka/bin/kafka-topics.sh" ] &&
        [ "$(cat "$out/stamp" 2>/dev/null)" = "$want" ]; then
        echo "test-runner for librdkafka $version: built already ($out)"
        echo OK
        return
    fi
    echo "building librdkafka $version and its test-runner from $src in $out"
    rm -rf "$out/librdkafka" "$out/kafka" "$out/stamp"
    cp -a "$src" "$out/librdkafka"
    cd "$out/librdkafka"
    # --enable-X makes a missing library fail configure instead of quietly
    # building without that codec (0017_compression would then skip it).
    # (The log is not named configure.*: configure loads such files as
    # modules.)
    ./configure --disable-ssl --disable-gssapi --disable-curl \
        --enable-zstd --enable-zlib --disable-lz4-ext >build-configure.log 2>&1 ||
        { tail -n 30 build-configure.log; die "configure failed (see above; apt-get install libzstd-dev zlib1g-dev)"; }
    # Without RapidJSON the statistics tests (0053, 0110, ...) skip themselves.
    grep -q '^#define WITH_RAPIDJSON 1' config.h ||
        die "RapidJSON headers not found; install them: apt-get install rapidjson-dev"
    local jobs
    jobs=$(nproc 2>/dev/null || echo 2)
    make -j"$jobs" libs >build-make.log 2>&1 || { tail -n 30 build-make.log; die "building librdkafka failed"; }
    make -j"$jobs" -C tests build >tests/build-make.log 2>&1 ||
        { tail -n 30 tests/build-make.log; die "building the test-runner failed"; }
    mkdir -p "$out/kafka/bin"
    cc -O1 -Wall -I"$out/librdkafka/src" -o "$out/kafka/bin/kafka-topics.sh" "$here/kafka-topics.c" \
        -L"$out/librdkafka/src" -lrdkafka -Wl,-rpath,"$out/librdkafka/src"
    echo "$want" >"$out/stamp"
    echo "built $out/librdkafka/tests/test-runner"
    echo OK
}

run() {
    local out=$1 work=$2 bootstrap=$3 scenario=$4 parallel=$5
    shift 5
    [ "$#" -gt 0 ] || die "no tests named"
    local runner=$out/librdkafka/tests/test-runner
    [ -x "$runner" ] || die "$runner is missing: run suite.sh build first"
    mkdir -p "$work"
    work=$(cd "$work" && pwd)
    sed "s/@BOOTSTRAP@/$bootstrap/" "$here/test.conf" >"$work/test.conf"
    # The tests open files relative to tests/ (../src/statistics_schema.json)
    # and leave a stats_*.json file each there.
    cd "$out/librdkafka/tests"
    rm -f stats_*.json
    # The runner matches TESTS by the four-digit number.
    local numbers
    numbers=$(printf '%s\n' "$@" | cut -c1-4 | sort -u | paste -sd, -)
    echo "librdkafka test-runner: scenario $scenario, $parallel in parallel, TEST_KAFKA_VERSION=$kafka_version"
    echo "tests: $*"
    local rc=0
    # The tests' socket emulator (sockem.c) forwards with send(2) without
    # MSG_NOSIGNAL, so a connection closed under it would kill the whole
    # runner with SIGPIPE; ignored, the send fails with EPIPE instead.
    trap '' PIPE
    # -L: not the tests that need no broker (they run against librdkafka's
    # mock cluster or nothing). LD_LIBRARY_PATH: the librdkafka just built,
    # never a system one. KAFKA_PATH and BROKERS: for the tests that run
    # $KAFKA_PATH/bin/kafka-topics.sh (the stand-in built above).
    env TESTS="$numbers" TEST_KAFKA_VERSION="$kafka_version" RDKAFKA_TEST_CONF="$work/test.conf" \
        KAFKA_PATH="$out/kafka" BROKERS="$bootstrap" \
        LD_LIBRARY_PATH="$out/librdkafka/src:$out/librdkafka/src-cpp" \
        "$runner" -L -s "$scenario" -p"$parallel" >"$work/suite.log" 2>&1 || rc=$?
    cd "$work"
    sed 's/\x1b\[[0-9;]*m//g' suite.log >suite.txt
    local lib
    lib=$(grep -a -m1 -o 'librdkafka v[0-9.]* ' suite.txt || true)
    echo "client library: ${lib:-unknown}"

    # Each test's verdict, as the runner prints it when the test ends
    # ("======== Test 0001_multiobj PASSED ========", "### Test
    # \"0001_multiobj (subtest)\" failed at ..."). Not the summary table:
    # other threads' output can cut into it.
    local failed=0 name took
    for name in "$@"; do
        if grep -a -q "### Test \"$name[ \"]" suite.txt; then
            echo "FAILED $name: $(grep -a -m1 -A1 "### Test \"$name[ \"]" suite.txt | tail -n 1)"
            failed=1
        elif took=$(grep -a -m1 "================= Test $name PASSED " suite.txt); then
            echo "PASSED $name ($(echo "$took" | sed -E 's/^.*\/ *([0-9.]+s)\] =.*/\1/'))"
        elif took=$(grep -a -m1 "| $name  *| *PASSED *|" suite.txt); then
            echo "PASSED $name ($(echo "$took" | sed -E 's/.*PASSED *\| *([0-9.]+s).*/\1/'))"
        elif grep -a -q "================= Test $name SKIPPED " suite.txt; then
            echo "SKIPPED $name (it skipped itself: $(grep -a -m1 "^\[$name  */.*WARN: SKIPPING TEST" suite.txt | sed 's/.*SKIPPING TEST: //'))"
            failed=1
        else
            echo "NO VERDICT $name (did not run or did not finish)"
            failed=1
        fi
    done
    # A test not named here but run alongside (another variant with the same
    # number) must not have failed either.
    while IFS= read -r name; do
        echo "FAILED alongside: $name"
        failed=1
    done < <(grep -a -o '### Test "[0-9][^" ]*' suite.txt | cut -c11- | sort -u | grep -v -x -F -f <(printf '%s\n' "$@") || true)

    if [ "$failed" -ne 0 ] || [ "$rc" -ne 0 ]; then
        echo "test-runner exit status $rc; what the failing tests printed last:"
        grep -a -A3 '^### Test .* failed at' suite.txt | head -n 80 || true
        echo "(whole output: $work/suite.log)"
        exit 1
    fi
    echo OK
}

case "${1:-}" in
build)
    [ "$#" -eq 3 ] || die "usage: suite.sh build SRC OUT"
    build "$2" "$3"
    ;;
run)
    [ "$#" -ge 7 ] || die "usage: suite.sh run OUT WORK BOOTSTRAP SCENARIO PARALLEL TEST..."
    shift
    run "$@"
    ;;
*)
    die "usage: suite.sh build SRC OUT | suite.sh run OUT WORK BOOTSTRAP SCENARIO PARALLEL TEST..."
    ;;
esac
