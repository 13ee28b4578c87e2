package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// teeStartTimeout bounds the sensor's answer to a tee request (it scans
// /proc for the snapshot first).
const teeStartTimeout = 60 * time.Second

// teeFromService asks the sensor on sock to tee its capture stream into
// path, created here (0600, never an existing file) and passed to the
// sensor as a descriptor. teed is false when no sensor answers: the
// caller then captures on its own. Once a sensor answers, its outcome is
// the capture's.
func teeFromService(ctx context.Context, sock, path string, req controlRequest, stderr io.Writer) (teed bool, err error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return false, err
	}
	defer c.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return true, &exitError{exitUsage, fmt.Errorf("capture: %w", err)}
	}
	keep := false
	defer func() {
		if !keep {
			os.Remove(path)
		}
	}()
	b, _ := json.Marshal(req)
	_, _, err = c.WriteMsgUnix(append(b, '\n'), unix.UnixRights(int(f.Fd())), nil)
	f.Close() // the sensor holds its own copy now
	if err != nil {
		// A sensor that refuses the caller answers and closes at once,
		// perhaps before the request is written: its answer says why.
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		var rep controlReply
		if line, _ := bufio.NewReader(c).ReadBytes('\n'); json.Unmarshal(line, &rep) == nil && rep.Error != "" {
			return true, fmt.Errorf("the sensor on %s refused the tee: %s", sock, rep.Error)
		}
		return true, fmt.Errorf("asking the sensor on %s to tee: %w", sock, err)
	}
	replies := make(chan controlReply, 2)
	go func() {
		defer close(replies)
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			var rep controlReply
			if json.Unmarshal(line, &rep) == nil {
				replies <- rep
			}
		}
	}()
	var first controlReply
	select {
	case r, ok := <-replies:
		if !ok {
			return true, fmt.Errorf("the sensor on %s closed the connection without answering", sock)
		}
		first = r
	case <-time.After(teeStartTimeout):
		return true, fmt.Errorf("the sensor on %s did not answer the tee request within %s", sock, teeStartTimeout)
	case <-ctx.Done():
		return true, ctx.Err()
	}
	if first.Error != "" {
		return true, fmt.Errorf("the sensor on %s refused the tee: %s", sock, first.Error)
	}
	keep = true
	fmt.Fprintf(stderr, "lineaged: teeing the running sensor's stream (instance %s) over %s; its programs and ring are left to it\n", first.Instance, sock)
	var last controlReply
	select {
	case r, ok := <-replies:
		// The sensor ended the tee first: it stopped, or dropped us.
		if !ok {
			return true, fmt.Errorf("the sensor on %s went away; %s holds what it sent", sock, path)
		}
		last = r
	case <-ctx.Done():
		b, _ := json.Marshal(controlRequest{Op: "stop"})
		_, _ = c.Write(append(b, '\n'))
		select {
		case r, ok := <-replies:
			if !ok {
				return true, fmt.Errorf("the sensor on %s closed the tee without its final answer; %s holds what it sent", sock, path)
			}
			last = r
		case <-time.After(30 * time.Second):
			return true, fmt.Errorf("the sensor on %s did not finish the tee within 30s", sock)
		}
	}
	if last.Error != "" {
		return true, errors.New(last.Error)
	}
	fmt.Fprintf(stderr, "lineaged: capture written to %s (%d records, teed from the running sensor)\n", path, last.Records)
	return true, nil
}
