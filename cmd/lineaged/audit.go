package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink"
	"github.com/lineaged/lineaged/sink/audit"
)

// DefaultCheckpointInterval is how often a signed checkpoint is written.
const DefaultCheckpointInterval = 60 * time.Second

// AuditConfig is the tamper-evident audit trail (docs/audit.md).
type AuditConfig struct {
	// Enabled chains every line and writes signed checkpoints.
	Enabled bool `mapstructure:"enabled"`
	// StateDir holds the current epoch's private key (0600) and the last
	// checkpoint of the previous run; created 0700 at first start. Empty
	// means "audit" under state_dir. One running sensor at a time.
	StateDir string `mapstructure:"state_dir"`
	// CheckpointInterval is the time between two checkpoints.
	CheckpointInterval time.Duration `mapstructure:"checkpoint_interval"`
	// Algorithm of the checkpoint keys: ed25519 or ecdsa-p256.
	Algorithm string `mapstructure:"algorithm"`
	// CheckpointCopy is a file (another disk, a mount of another host) that
	// receives a copy of every checkpoint line; "" for none.
	CheckpointCopy string `mapstructure:"checkpoint_copy"`
	// CheckpointTopic is a Kafka topic, on kafka.brokers, that receives a
	// copy of every checkpoint line; "" for none.
	CheckpointTopic string `mapstructure:"checkpoint_topic"`
}

func (a *AuditConfig) validate(p *problems) {
	if !a.Enabled {
		return
	}
	if a.StateDir == "" || !filepath.IsAbs(a.StateDir) {
		p.bad("audit.state_dir", "%q must be an absolute directory", a.StateDir)
	}
	if a.CheckpointInterval < time.Second {
		p.bad("audit.checkpoint_interval", "%v must be at least 1s", a.CheckpointInterval)
	}
	if a.Algorithm != audit.AlgEd25519 && a.Algorithm != audit.AlgECDSAP256 {
		p.bad("audit.algorithm", "%q is not %s or %s", a.Algorithm, audit.AlgEd25519, audit.AlgECDSAP256)
	}
	if a.CheckpointCopy != "" && !filepath.IsAbs(a.CheckpointCopy) {
		p.bad("audit.checkpoint_copy", "%q must be an absolute path", a.CheckpointCopy)
	}
}

// validateCheckpointTopic checks audit.checkpoint_topic against the Kafka
// output.
func (c *Config) validateCheckpointTopic(p *problems) {
	t := c.Audit.CheckpointTopic
	if !c.Audit.Enabled || t == "" {
		return
	}
	if len(c.Kafka.Brokers) == 0 {
		p.bad("audit.checkpoint_topic", "needs kafka.brokers (the checkpoints go to the same brokers)")
	} else if t == c.Kafka.Topic {
		p.bad("audit.checkpoint_topic", "%q is kafka.topic: a second destination must be another topic", t)
	}
}

// auditTrail is the running audit chain of a pipeline.
type auditTrail struct {
	cfg      AuditConfig
	instance string
	signer   *audit.Signer
	chain    *audit.Chain
	prev     audit.Previous
	copy     *os.File
	topic    *checkpointTopic // audit.checkpoint_topic
	// lock holds audit.state_dir for this run (audit.Lock); released at
	// close, or with the process.
	lock *os.File
}

// newAudit makes the chain of this run; its key and its link to the
// previous run are read by open, once the sensor is known to be privileged.
func newAudit(cfg AuditConfig, instance string) *auditTrail {
	return &auditTrail{cfg: cfg, instance: instance, chain: audit.NewChain(instance, audit.Zero, nil)}
}

// open loads (or creates) the key and links the chain to the previous
// run's last checkpoint.
func (t *auditTrail) open() error {
	// Two sensors writing one key would break each other's chain (and
	// each other's state file): the lock is held until close. The file
	// is kept: an unreferenced *os.File is closed when collected, and its
	// flock with it.
	lock, err := audit.Lock(t.cfg.StateDir)
	if err != nil {
		return err
	}
	t.lock = lock
	s, prev, err := audit.Open(t.cfg.StateDir, t.cfg.Algorithm)
	if err != nil {
		return err
	}
	t.signer, t.prev = s, prev
	t.chain.Attach(prev.Checkpoint, s)
	if t.cfg.CheckpointCopy != "" {
		f, err := os.OpenFile(t.cfg.CheckpointCopy, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("audit.checkpoint_copy: %w", err)
		}
		t.copy = f
		t.chain.CopyCheckpoints(audit.CopyTo(f))
	}
	if t.topic != nil {
		t.chain.CopyCheckpoints(t.topic.write)
	}
	return s.Start(t.instance)
}

// wrap is sink.Config.Wrap.
func (t *auditTrail) wrap(enc sink.Encoder) sink.Encoder { return t.chain.Wrap(enc) }

// mirrorFile lets the chain ask for a checkpoint before the output file
// rotates.
func (t *auditTrail) mirrorFile(path string, maxBytes int64) {
	size := int64(0)
	if st, err := os.Stat(path); err == nil {
		size = st.Size()
	}
	if maxBytes == 0 {
		maxBytes = 100 << 20 // sink.OpenRotating's default
	}
	t.chain.MirrorRotation(size, maxBytes)
}

// describePrevious says on sensor.start how the previous run ended.
func (t *auditTrail) describePrevious(s *event.Sensor) {
	if t == nil || t.prev.Instance == "" {
		return
	}
	s.PreviousInstanceID = t.prev.Instance
	s.PreviousEnd = event.PreviousEndStop
	if t.prev.Crashed {
		s.PreviousEnd = event.PreviousEndCrash
	}
}

func (t *auditTrail) close() error {
	var err error
	if t.copy != nil {
		err = t.copy.Close()
	}
	if t.topic != nil {
		err = errors.Join(err, t.topic.sink.Close())
	}
	if t.lock != nil {
		err = errors.Join(err, t.lock.Close())
	}
	return err
}

func checkpointEvent(reason string) *event.Event {
	return &event.Event{Kind: event.KindSensorCheckpoint, Time: time.Now().UTC(), Checkpoint: &event.Checkpoint{Reason: reason}}
}

// emitCheckpoints asks lineage for an interval checkpoint until ctx ends,
// so it takes its place in the stream like any event.
func (p *pipeline) emitCheckpoints(ctx context.Context) {
	if p.audit == nil {
		return
	}
	tick := time.NewTicker(p.audit.cfg.CheckpointInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			p.engine.Emit(checkpointEvent(event.CheckpointInterval))
		}
	}
}

// afterWrite writes the checkpoint that precedes a file rotation and logs a
// checkpoint's failed side effects.
func (p *pipeline) afterWrite() {
	if p.audit == nil {
		return
	}
	if p.audit.chain.NeedCheckpoint() {
		p.writeCheckpoint(event.CheckpointRotation)
	}
	if err := p.audit.chain.Err(); err != nil {
		p.log.Error("audit checkpoint", "err", err)
	}
}

// writeCheckpoint numbers and writes a checkpoint directly (rotation, stop).
func (p *pipeline) writeCheckpoint(reason string) error {
	cp := checkpointEvent(reason)
	p.seq.Stamp(cp)
	if err := p.sink.Write(context.Background(), cp); err != nil {
		p.log.Error("writing checkpoint", "reason", reason, "err", err)
		return err
	}
	return nil
}

// finishAudit writes the final checkpoint, after sensor.stop.
func (p *pipeline) finishAudit() error {
	if p.audit == nil || p.audit.signer == nil {
		return nil
	}
	return errors.Join(p.writeCheckpoint(event.CheckpointStop), p.audit.chain.Err())
}

// stoppedAudit records a clean stop once the final checkpoint is out and
// the sink closed without error (err); otherwise the next start reports a
// crash.
func (p *pipeline) stoppedAudit(err error) {
	if p.audit == nil || p.audit.signer == nil {
		return
	}
	if err != nil {
		p.log.Error("the final checkpoint may not be written; the next start reports a crash", "err", err)
		return
	}
	if err := p.audit.signer.Stop(); err != nil {
		p.log.Error("audit state", "err", err)
	}
}

// startAudit opens the audit trail and puts its chain in the sink's path.
func (p *pipeline) startAudit(sc *sink.Config) error {
	if !p.cfg.Audit.Enabled {
		return nil
	}
	p.audit = newAudit(p.cfg.Audit, p.instance)
	if p.cfg.Audit.CheckpointTopic != "" {
		t, err := openCheckpointTopic(p.cfg, p.instance, p.log)
		if err != nil {
			return fmt.Errorf("audit.checkpoint_topic: %w", err)
		}
		p.audit.topic = t
	}
	sc.Wrap = p.audit.wrap
	if len(sc.Kafka.Brokers) == 0 && sc.Output != "" && sc.Output != "-" {
		p.audit.mirrorFile(sc.Output, sc.File.MaxBytes)
	}
	return nil
}
