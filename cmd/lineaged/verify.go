package main

import (
	"bufio"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lineaged/lineaged/sink/audit"
)

// Exit codes of lineaged verify (docs/audit.md).
const (
	exitUnverified = 3 // nothing wrong, but events after the last checkpoint
	exitTampered   = 4 // an event edited, removed, inserted or forged
)

const verifyUsage = `Usage: lineaged verify --key PUB [--key PUB...] FILE...|-
       lineaged verify --key PUB --kafka-brokers HOST:PORT --kafka-topic TOPIC

Checks the hash chain and the signed checkpoints of a stream of lineaged
events as they were written (files, - for stdin, or a Kafka topic read from
its start). Lines may come in any order and from several runs: they are
ordered by (instance, seq). Each defect is printed with the event it is
about. Exit status: 0 verified, 3 unverified tail (events after the last
checkpoint), 4 tampered, 1 the input could not be read, 2 usage.

Flags:
`

// cmdVerify is lineaged verify.
func cmdVerify(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("verify", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	keyFiles := fs.StringArray("key", nil, "trusted public key (PEM), as lineaged key printed it; repeatable")
	brokers := fs.StringSlice("kafka-brokers", nil, "read the events from Kafka: HOST:PORT[,HOST:PORT...]")
	topic := fs.String("kafka-topic", "", "the Kafka topic (with --kafka-brokers)")
	quiet := fs.BoolP("quiet", "q", false, "print defects only, not notes")
	fs.Usage = func() { fmt.Fprintf(stderr, "%s%s", verifyUsage, fs.FlagUsages()) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return &exitError{exitUsage, err}
	}
	if len(*keyFiles) == 0 {
		return &exitError{exitUsage, errors.New("verify: --key PUB is required (the public key lineaged key printed)")}
	}
	kafka := len(*brokers) > 0
	switch {
	case kafka && *topic == "":
		return &exitError{exitUsage, errors.New("verify: --kafka-topic is required with --kafka-brokers")}
	case kafka && fs.NArg() > 0:
		return &exitError{exitUsage, errors.New("verify: give files or --kafka-brokers, not both")}
	case !kafka && fs.NArg() == 0:
		return &exitError{exitUsage, errors.New("verify: no input: give FILE..., - for stdin, or --kafka-brokers")}
	}
	var keys []crypto.PublicKey
	for _, f := range *keyFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return &exitError{exitUsage, fmt.Errorf("verify: --key: %w", err)}
		}
		k, err := audit.ParsePublicKeys(data)
		if err != nil {
			return &exitError{exitUsage, fmt.Errorf("verify: --key %s: %w", f, err)}
		}
		keys = append(keys, k...)
	}
	v, err := audit.NewVerifier(keys)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	if kafka {
		err = readKafka(context.Background(), *brokers, *topic, v)
	} else {
		for _, name := range fs.Args() {
			if err = readFile(name, stdin, v); err != nil {
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	rep := v.Finish()
	for _, f := range rep.Findings {
		if *quiet && f.Status == audit.Verified {
			continue
		}
		fmt.Fprintln(stdout, f)
	}
	st := rep.Status()
	fmt.Fprintf(stdout, "%s: %d lines, %d events in %d runs, %d covered by %d verified checkpoints\n",
		st, rep.Lines, rep.Events, rep.Runs, rep.Covered, rep.Checkpoints)
	switch st {
	case audit.Unverified:
		return &exitError{exitUnverified, errors.New("verify: unverified tail")}
	case audit.Tampered:
		return &exitError{exitTampered, errors.New("verify: the stream was tampered with")}
	}
	return nil
}

// readFile adds every line of name (- for stdin) to v.
func readFile(name string, stdin io.Reader, v *audit.Verifier) error {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	br := bufio.NewReaderSize(r, 1<<20)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			v.Add(name, n, line)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
}

// readKafka adds every record of topic, from each partition's start to its
// end when reading began, to v. Records are named partition/offset.
func readKafka(ctx context.Context, brokers []string, topic string, v *audit.Verifier) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("kafka: end offsets of %s: %w", topic, err)
	}
	if err := ends.Error(); err != nil {
		return fmt.Errorf("kafka: end offsets of %s: %w", topic, err)
	}
	want := map[int32]int64{}
	offsets := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			offsets[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(want) == 0 {
		return nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets})
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("kafka: reading %s: %w", topic, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = errors.Join(ferr, err) })
		if ferr != nil {
			return fmt.Errorf("kafka: reading %s: %w", topic, ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			v.Add(fmt.Sprintf("%s/%d", topic, r.Partition), int(r.Offset), r.Value)
			if r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return nil
}
