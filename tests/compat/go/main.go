// Command compat-go drives Conveyor with the Go Kafka clients and checks the
// values it answers, not only that calls returned.
//
//	compat-go franz  --bootstrap 127.0.0.1:PORT   franz-go: kgo and kadm
//	compat-go sarama --bootstrap 127.0.0.1:PORT   IBM Sarama
//
// Each subcommand prints what it checked, one line a step, and ends with a
// line OK; the first check that fails prints FAIL with what was seen and
// exits 1. Every wait is bounded. Run by tests/tests/compat_go.rs against a
// broker started with num.partitions=3 and a group's first rebalance not
// delayed.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"time"
)

// stepTimeout bounds every single request or wait a step makes.
const stepTimeout = 30 * time.Second

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	bootstrap := fs.String("bootstrap", "", "host:port of the broker")
	version := fs.String("kafka-version", "3.6.0", "Sarama's config.Version")
	if err := fs.Parse(os.Args[2:]); err != nil || *bootstrap == "" {
		usage()
	}
	switch cmd {
	case "franz":
		runFranz(*bootstrap)
	case "sarama":
		runSarama(*bootstrap, *version)
	default:
		usage()
	}
	fmt.Println("OK")
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: compat-go franz|sarama --bootstrap HOST:PORT [--kafka-version V]")
	os.Exit(2)
}

// failf reports a failed check and exits.
func failf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	os.Exit(1)
}

// check fails with the message unless cond holds.
func check(cond bool, format string, args ...any) {
	if !cond {
		failf(format, args...)
	}
}

// must fails on a non-nil error, naming what was being done.
func must(err error, what string) {
	if err != nil {
		failf("%s: %v", what, err)
	}
}

// step prints one checked step.
func step(format string, args ...any) {
	fmt.Printf("ok: "+format+"\n", args...)
}

// unique makes names that no earlier run on the same broker used.
func unique(prefix string) string {
	return fmt.Sprintf("%s-%d-%08x", prefix, time.Now().UnixNano(), rand.Uint32())
}

// waitFor polls cond every 50 ms until it returns nil or stepTimeout passes,
// then fails with its last error.
func waitFor(what string, cond func() error) {
	deadline := time.Now().Add(stepTimeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			failf("%s: still not true after %v: %v", what, stepTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sent is a record as produced, the reference every consumed record is
// checked against.
type sent struct {
	key, value string
	headers    [][2]string
	timestamp  time.Time
}

// recordFor makes the i-th record of a run: a key, a value, two headers
// (one with an empty value) and a timestamp in the past, whole milliseconds.
func recordFor(run string, i int, base time.Time) sent {
	return sent{
		key:   fmt.Sprintf("%s-key-%d", run, i%17),
		value: fmt.Sprintf("%s-value-%06d-%s", run, i, "payload payload payload"),
		headers: [][2]string{
			{"index", fmt.Sprint(i)},
			{"empty", ""},
		},
		timestamp: base.Add(time.Duration(i) * time.Millisecond),
	}
}
