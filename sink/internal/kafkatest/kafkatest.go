// Package kafkatest runs in-process kfake brokers and a franz-go consumer
// group for the Kafka sink tests, and builds keyed event streams.
package kafkatest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/testevents"
)

// Topic is the topic seeded in every test cluster.
const Topic = "lineaged-events"

// Partitions is the partition count of Topic.
const Partitions = 4

// Cluster starts a one-broker kfake cluster on 127.0.0.1 with Topic seeded
// and closes it at the end of the test.
func Cluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	opts = append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.SeedTopics(Partitions, Topic),
	}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Message is one consumed record.
type Message struct {
	Partition int32
	Offset    int64
	Key       string
	Value     []byte
	Headers   map[string]string
	EventID   string
	Seq       uint64
}

// Consume reads Topic through a consumer group until want distinct
// event_ids have been seen (the caller's last event is the marker) or the
// timeout passes. It returns every record, duplicates included, in fetch
// order.
func Consume(t testing.TB, brokers []string, want int, timeout time.Duration, opts ...kgo.Opt) []Message {
	t.Helper()
	opts = append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumerGroup(fmt.Sprintf("test-%d", time.Now().UnixNano())),
		kgo.ConsumeTopics(Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(50 * time.Millisecond),
	}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []Message
	seen := map[string]bool{}
	for len(seen) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d events before the timeout", len(seen), want)
		}
		for _, e := range fs.Errors() {
			t.Logf("fetch error (retried): %v", e.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			m := Message{Partition: r.Partition, Offset: r.Offset, Key: string(r.Key), Value: r.Value, Headers: map[string]string{}}
			for _, h := range r.Headers {
				m.Headers[h.Key] = string(h.Value)
			}
			var ev struct {
				EventID string `json:"event_id"`
				Seq     uint64 `json:"seq"`
				Meta    *struct {
					UID string `json:"uid"`
				} `json:"metadata"`
				Unmapped *struct {
					Lineaged struct {
						Seq uint64 `json:"seq"`
					} `json:"lineaged"`
				} `json:"unmapped"`
			}
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				t.Errorf("partition %d offset %d: not JSON: %v", r.Partition, r.Offset, err)
				return
			}
			m.EventID, m.Seq = ev.EventID, ev.Seq
			if ev.Meta != nil { // OCSF
				m.EventID = ev.Meta.UID
				if ev.Unmapped != nil {
					m.Seq = ev.Unmapped.Lineaged.Seq
				}
			}
			seen[m.EventID] = true
			out = append(out, m)
		})
	}
	return out
}

// CheckDelivery asserts that every id in want was delivered and that, per
// key, the first delivery of each event is in increasing seq order.
func CheckDelivery(t testing.TB, msgs []Message, want []*event.Event) {
	t.Helper()
	first := map[string]bool{}
	lastSeq := map[string]uint64{}
	for _, m := range msgs {
		if first[m.EventID] {
			continue // an at-least-once duplicate: recognised by event_id
		}
		first[m.EventID] = true
		if prev, ok := lastSeq[m.Key]; ok && m.Seq <= prev {
			t.Errorf("key %s: seq %d after %d (partition %d offset %d)", m.Key, m.Seq, prev, m.Partition, m.Offset)
		}
		lastSeq[m.Key] = m.Seq
	}
	missing := 0
	for _, ev := range want {
		if !first[ev.EventID] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d events were not delivered", missing, len(want))
	}
}

// Events returns n events spread over sessions agent sessions (plus
// host-level events when sessions is 0), with seq starting at from.
func Events(from uint64, n, sessions int) []*event.Event {
	kinds := []string{event.KindProcessExec, event.KindFileOpen, event.KindNetConnect, event.KindProcessExit}
	out := make([]*event.Event, 0, n)
	for i := 0; i < n; i++ {
		seq := from + uint64(i)
		ev := testevents.New(kinds[i%len(kinds)], seq, "")
		if sessions > 0 {
			s := i % sessions
			ev.Agent = testevents.Agent(fmt.Sprintf("00000000-0000-4000-8000-%012d", s))
			ev.Agent.RootExecID = event.ExecID(ev.Host.BootID, uint32(5000+s), 1, 1)
		}
		out = append(out, ev)
	}
	return out
}

// PKI is a throwaway CA with a server and a client certificate on disk.
type PKI struct {
	CAFile, CertFile, KeyFile string // client side
	Server                    *tls.Config
	OtherCAFile               string // a CA that did not sign the server
}

// NewPKI writes the files into dir and returns a server config that
// requires a client certificate signed by the same CA.
func NewPKI(t testing.TB, dir string) *PKI {
	t.Helper()
	ca, caKey := selfSigned(t, "lineaged test CA")
	other, _ := selfSigned(t, "unrelated CA")
	srvCert, srvKey := leaf(t, ca, caKey, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := leaf(t, ca, caKey, "lineaged-client", x509.ExtKeyUsageClientAuth)
	p := &PKI{
		CAFile:      writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Raw),
		OtherCAFile: writePEM(t, dir, "other-ca.pem", "CERTIFICATE", other.Raw),
		CertFile:    writePEM(t, dir, "client.pem", "CERTIFICATE", cliCert.Raw),
		KeyFile:     writePEM(t, dir, "client-key.pem", "EC PRIVATE KEY", marshalKey(t, cliKey)),
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	p.Server = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvCert.Raw}, PrivateKey: srvKey}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}
	return p
}

func selfSigned(t testing.TB, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func leaf(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, use x509.ExtKeyUsage) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{use},
	}
	if ip := net.ParseIP(name); ip != nil {
		tpl.IPAddresses = []net.IP{ip}
	} else {
		tpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func marshalKey(t testing.TB, k *ecdsa.PrivateKey) []byte {
	b, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
