package main

import (
	"os"
	"path/filepath"

	"github.com/lineaged/lineaged/sensor/trustwatch"
)

// startTrustWatch watches the trust anchors (docs/threat-model.md, Trust
// anchors) for every process: a write by anything but the package manager
// becomes a sensor.tamper event (action trust-anchor) in the sensor's
// stream, and a package record written so taints the verdicts resting on
// it (package-untrusted). A host where fanotify is not available runs
// without the watch, said in the log.
func (p *pipeline) startTrustWatch() {
	anchors := trustwatch.DefaultAnchors()
	add := func(path, class string, dir bool) {
		if path != "" && filepath.IsAbs(path) {
			anchors = append(anchors, trustwatch.Anchor{Path: filepath.Clean(path), Class: class, Dir: dir})
		}
	}
	if d := p.inspect.PackageDir(); d != "" {
		add(filepath.Join(d, "info"), trustwatch.ClassPackageDB, true)
		add(d, trustwatch.ClassPackageDB, true)
	}
	add(p.cfg.Trust.SignatureDir, trustwatch.ClassSignatures, true)
	for _, k := range p.cfg.Trust.TrustedKeys {
		add(k, trustwatch.ClassTrustedKey, false)
	}
	if exe, err := os.Executable(); err == nil {
		add(exe, trustwatch.ClassLineaged, false)
	}
	add(filepath.Dir(DefaultConfigPath), trustwatch.ClassLineaged, true)
	add(p.cfg.StateDir, trustwatch.ClassLineaged, true)
	add(p.cfg.Audit.StateDir, trustwatch.ClassLineaged, true)
	add(p.cfg.Hashing.CacheDir, trustwatch.ClassLineaged, true) // the hash cache and the package taints

	w, err := trustwatch.New(trustwatch.Config{
		Anchors:   anchors,
		ProcRoot:  procRoot,
		SessionOf: p.sensor.SessionOf,
		Written: func(wr trustwatch.Write) {
			switch {
			case wr.Anchor.Class != trustwatch.ClassPackageDB:
			case wr.PackageManager:
				p.inspect.UntaintPackageRecord(wr.Path)
			default:
				p.inspect.TaintPackageRecord(wr.Path)
			}
		},
		Log: p.log.With("component", "trustwatch"),
	})
	if err != nil {
		p.log.Warn("trust anchors not watched", "err", err)
		return
	}
	p.inspect.SyncPackageRecords(w.Drain)
	p.source = &trustwatch.Source{Inner: p.source, Watcher: w}
}
