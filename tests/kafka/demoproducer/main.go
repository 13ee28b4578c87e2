// Command demoproducer writes a few lineaged events through the real sink
// (sink.New with the Kafka configuration: spool, acks=all, headers) and
// waits until the broker has acknowledged them. It is the producer half of
// `make kafka-demo` (tests/kafka-demo.sh).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/lineage/policy"
	"github.com/lineaged/lineaged/sink"
	"github.com/lineaged/lineaged/sink/kafka"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demoproducer:", err)
		os.Exit(1)
	}
}

func run() error {
	brokers := flag.String("brokers", "127.0.0.1:9092", "comma-separated HOST:PORT")
	topic := flag.String("topic", "lineaged-events", "topic")
	n := flag.Int("n", 5, "events to produce")
	format := flag.String("format", "native", "native or ocsf")
	spoolDir := flag.String("spool", "", "spool directory (required)")
	flag.Parse()
	if *spoolDir == "" {
		return fmt.Errorf("-spool is required")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	seq := policy.NewSequencer("demo")
	s, err := sink.New(sink.Config{
		Format:        *format,
		SensorVersion: "demo",
		Kafka: kafka.Config{
			Brokers: strings.Split(*brokers, ","),
			Topic:   *topic,
			Spool:   kafka.SpoolConfig{Dir: *spoolDir, MaxBytes: 16 << 20},
			Stamp:   seq.Stamp,
		},
	}, nil, log)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	h := &event.Host{Hostname: host, MachineID: "demo-machine", BootID: "demo-boot", OS: "Linux", Kernel: "demo"}
	root := event.ExecID(h.BootID, 100, 1, 1)
	now := time.Now()
	for i := 1; i <= *n; i++ {
		t := now.Add(time.Duration(i) * time.Millisecond)
		pid := uint32(1000 + i)
		ev := &event.Event{
			Schema: event.Schema, Time: t,
			Kind: event.KindProcessExec, Host: h,
			Process: &event.Process{
				ExecID: event.ExecID(h.BootID, pid, uint64(i), uint64(i)), ParentExecID: root,
				PID: pid, PPID: 100, StartTime: t, Exe: "/usr/bin/git", Argv: []string{"git", "status"},
				Cwd: "/home/dev/project", UID: 1000, EUID: 1000, GID: 1000, User: "dev",
			},
			Agent: &event.Agent{Name: "claude-code", RootExecID: root, Role: event.RoleTool,
				ToolUse: &event.ToolUse{ID: fmt.Sprintf("toolu_demo_%d", i), Name: "Bash"}},
		}
		seq.Stamp(ev)
		if err := s.Write(context.Background(), ev); err != nil {
			return err
		}
	}
	// Close drains the spool into Kafka (acks=all) before returning.
	return s.Close()
}
