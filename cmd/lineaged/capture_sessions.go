package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/lineaged/lineaged/capture"
	"github.com/lineaged/lineaged/report/sessions"
)

// isCapture reports whether f starts with the capture magic, and rewinds it.
func isCapture(f *os.File) bool {
	var m [len(capture.Magic)]byte
	n, _ := io.ReadFull(f, m[:])
	_, err := f.Seek(0, io.SeekStart)
	return err == nil && n == len(m) && bytes.Equal(m[:], capture.Magic[:])
}

// sessionsFromCapture replays a capture with the configuration in force
// (native output, no audit, no Kafka) and feeds the events to b, so
// `lineaged sessions` reads captures as it reads output.
func sessionsFromCapture(name string, b *sessions.Builder, stderr io.Writer) error {
	fs := newFlags("sessions", io.Discard)
	if err := fs.Parse(nil); err != nil {
		return err
	}
	cfg, err := loadConfig(fs, os.Getenv)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	l, err := loadCapture(name, false)
	if err != nil {
		return &exitError{exitRuntime, err}
	}
	if s := l.info.header.Meta[metaScope]; s != "" {
		cfg.Scope = s
	}
	cfg.Format, cfg.Output, cfg.Kafka.Brokers, cfg.Audit.Enabled = "native", "-", nil, false
	cfg.Events.Schema = "v2"
	pr, pw := io.Pipe()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() {
		err := replayOne(context.Background(), cfg, l, replayOpts{}, 0, pw, io.Discard, log)
		pw.CloseWithError(err)
	}()
	if err := sessions.Read(pr, name, b.Add); err != nil {
		return fmt.Errorf("sessions: replaying %s: %w", name, err)
	}
	if l.endErr != nil {
		fmt.Fprintf(stderr, "lineaged: sessions: %v (shown up to the last whole record)\n", l.endErr)
	}
	return nil
}
