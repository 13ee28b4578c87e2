// Command kafkabroker runs a single-node Kafka-protocol broker (franz-go's
// kfake) on 127.0.0.1 for development scripts, `make kafka-demo` and the
// third-party consumer tests. It is a test fixture, not a production broker.
//
//	kafkabroker -port 9092 -topic lineaged-events -partitions 4
//
// It prints "ready 127.0.0.1:PORT" on stdout once it accepts connections and
// runs until SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kafkabroker:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("kafkabroker", flag.ContinueOnError)
	port := fs.Int("port", 9092, "TCP port on 127.0.0.1 (0 picks a free one)")
	topics := fs.String("topic", "lineaged-events", "comma-separated topics to create")
	partitions := fs.Int("partitions", 4, "partitions per topic")
	dataDir := fs.String("data-dir", "", "persist the log in this directory (empty: memory only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *port < 0 || *port > 65535 {
		return fmt.Errorf("-port %d out of range", *port)
	}
	if *partitions < 1 {
		return fmt.Errorf("-partitions %d: need at least 1", *partitions)
	}
	var names []string
	for _, t := range strings.Split(*topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			names = append(names, t)
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("-topic: no topic given")
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(*port),
		kfake.SeedTopics(int32(*partitions), names...),
	}
	if *dataDir != "" {
		if err := os.MkdirAll(*dataDir, 0o700); err != nil {
			return err
		}
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Printf("ready %s\n", c.ListenAddrs()[0])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}
