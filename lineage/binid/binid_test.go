package binid

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/lineage"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor/procfs"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func copyFile(t *testing.T, src, dst string, extra []byte) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, append(b, extra...), 0o700); err != nil {
		t.Fatal(err)
	}
}

// running starts path with args and returns it once its image is
// complete in /proc; the process is killed at cleanup.
func running(t testing.TB, path string, args ...string) (*exec.Cmd, *procfs.Proc) {
	t.Helper()
	cmd := exec.Command(path, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for range 2000 {
		p, err := procfs.Read("/proc", uint32(cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Argv) > 0 {
			return cmd, p
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("child never completed its exec")
	return nil, nil
}

// catRunning starts a cat that waits on an open stdin.
func catRunning(t *testing.T, path string) (*exec.Cmd, *procfs.Proc) {
	t.Helper()
	cmd := exec.Command(path)
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for range 2000 {
		p, err := procfs.Read("/proc", uint32(cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Argv) > 0 {
			return cmd, p
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("cat never completed its exec")
	return nil, nil
}

// request is what the engine asks for a process: the exec-time stat.
func request(p *procfs.Proc) lineage.BinaryRequest {
	path := p.Exe
	if p.ExeDeleted {
		path += " (deleted)"
	}
	return lineage.BinaryRequest{PID: p.PID, Path: path, Stat: p.Binary, HasStat: p.HasBinary}
}

func newInspector(t *testing.T, cfg Config, pol *TrustPolicy, pkgs PackageDB) *Inspector {
	t.Helper()
	in, err := New(cfg, pol, pkgs, quiet())
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func TestPackageVerifiedAndCopyIsNot(t *testing.T) {
	if _, err := os.Stat("/var/lib/dpkg/info/coreutils.md5sums"); err != nil {
		t.Skip("needs a dpkg system with coreutils: ", err)
	}
	db := &Dpkg{Dir: "/var/lib/dpkg"}
	in := newInspector(t, Config{}, nil, db)
	// /bin/cat, kept running on an open stdin. dpkg lists it as bin/cat;
	// the kernel reports /usr/bin/cat (merged /usr).
	_, cat := catRunning(t, "/bin/cat")
	if cat.Exe != "/usr/bin/cat" {
		t.Logf("exe reported as %s", cat.Exe)
	}
	b := in.Inspect(context.Background(), request(cat))
	if b.Verdict != event.VerdictPackageVerified || b.Package != "coreutils" || b.SHA256 != sha256File(t, "/usr/bin/cat") {
		t.Errorf("/bin/cat = %+v", b)
	}
	if got, ok := in.Cached(request(cat)); !ok || got != b {
		t.Errorf("cache miss after inspect: %v %v", got, ok)
	}
	cp := filepath.Join(t.TempDir(), "cat")
	copyFile(t, "/usr/bin/cat", cp, nil)
	_, c := catRunning(t, cp)
	cb := in.Inspect(context.Background(), request(c))
	if cb.Verdict != event.VerdictUnsigned || cb.Package != "" || cb.SHA256 != b.SHA256 {
		t.Errorf("copy = %+v", cb)
	}
}

func TestPackageModified(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tool")
	copyFile(t, "/usr/bin/sleep", bin, nil)
	db := filepath.Join(dir, "dpkg")
	if err := os.MkdirAll(filepath.Join(db, "info"), 0o700); err != nil {
		t.Fatal(err)
	}
	// A package claims the file with a digest of other contents.
	line := fmt.Sprintf("%s  %s\n", strings.Repeat("ab", 16), strings.TrimPrefix(bin, "/"))
	if err := os.WriteFile(filepath.Join(db, "info", "toolpkg:amd64.md5sums"), []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	in := newInspector(t, Config{}, nil, &Dpkg{Dir: db})
	_, p := running(t, bin, "30")
	b := in.Inspect(context.Background(), request(p))
	if b.Verdict != event.VerdictPackageModified || b.Package != "toolpkg" || !strings.Contains(b.Reason, "md5 digest differs") {
		t.Errorf("modified = %+v", b)
	}
}

func TestDpkgRefreshAndAliases(t *testing.T) {
	db := t.TempDir()
	if err := os.MkdirAll(filepath.Join(db, "info"), 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(db, "info", name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a.md5sums", "0123456789abcdef0123456789abcdef  bin/foo\nnot a line\n")
	now := time.Unix(1000, 0)
	d := &Dpkg{Dir: db, Recheck: time.Second, Now: func() time.Time { return now }}
	if f, ok := d.Lookup("/usr/bin/foo"); !ok || f.Package != "a" {
		t.Errorf("usrmerge alias: %+v %v", f, ok)
	}
	if _, ok := d.Lookup("/usr/bin/bar"); ok {
		t.Error("bar is not installed yet")
	}
	g := d.Generation()
	write("b.md5sums", "0123456789abcdef0123456789abcdef  usr/sbin/bar\n")
	// Make the change visible to the mtime check even on coarse clocks.
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(db, "info"), later, later); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Lookup("/sbin/bar"); ok {
		t.Error("reloaded before the recheck interval")
	}
	now = now.Add(2 * time.Second)
	if f, ok := d.Lookup("/sbin/bar"); !ok || f.Package != "b" || d.Generation() == g {
		t.Errorf("after refresh: %+v %v gen %d->%d", f, ok, g, d.Generation())
	}
	if got := Aliases("/lib/x"); len(got) != 2 || got[1] != "/usr/lib/x" {
		t.Errorf("Aliases = %v", got)
	}
}

func TestOverwriteAfterExecHashesWhatRan(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "prog")
	copyFile(t, "/usr/bin/sleep", bin, nil)
	want := sha256File(t, bin)
	_, p := running(t, bin, "30")
	// Replace the path (install/mv: a new inode) with other contents.
	tmp := bin + ".new"
	copyFile(t, "/usr/bin/true", tmp, nil)
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	in := newInspector(t, Config{}, nil, nil)
	b := in.Inspect(context.Background(), request(p))
	if b.SHA256 != want || b.Verdict != event.VerdictUnsigned || b.Inode != p.Binary.Inode {
		t.Errorf("hashed %s (%+v), want the executed %s", b.SHA256, b, want)
	}
	if b.SHA256 == sha256File(t, bin) {
		t.Error("hashed the replacement")
	}
}

func TestDeletedBinaryThenVanished(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "doomed")
	copyFile(t, "/usr/bin/sleep", bin, []byte("x"))
	want := sha256File(t, bin)
	cmd, p := running(t, bin, "30")
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	after, err := procfs.Read("/proc", p.PID)
	if err != nil {
		t.Fatal(err)
	}
	if !after.ExeDeleted {
		t.Fatalf("exe not marked deleted: %q", after.Exe)
	}
	in := newInspector(t, Config{}, nil, nil)
	// The exec-time identity, with the path as the kernel reports it now.
	req := request(p)
	req.Path += " (deleted)"
	b := in.Inspect(context.Background(), req)
	if b.SHA256 != want || !strings.HasSuffix(b.Path, " (deleted)") {
		t.Errorf("deleted = %+v, want sha %s", b, want)
	}
	// Once the process is gone nothing holds the file: a fresh inspector
	// (no cache) must say so, not hash something else.
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	in2 := newInspector(t, Config{}, nil, nil)
	v := in2.Inspect(context.Background(), req)
	if v.Verdict != event.VerdictError || !strings.Contains(v.Reason, "binary vanished") || v.SHA256 != "" {
		t.Errorf("vanished = %+v", v)
	}
}

func TestFallbackToPathOnlyWhenStatMatches(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "short")
	copyFile(t, "/usr/bin/sleep", bin, nil)
	cmd, p := running(t, bin, "30")
	req := request(p)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	in := newInspector(t, Config{}, nil, nil)
	b := in.Inspect(context.Background(), req)
	if b.Verdict != event.VerdictUnsigned || b.SHA256 != sha256File(t, bin) {
		t.Errorf("exited, path intact: %+v", b)
	}
	// Same path, new contents: not the file that ran.
	copyFile(t, "/usr/bin/true", bin+".x", nil)
	if err := os.Rename(bin+".x", bin); err != nil {
		t.Fatal(err)
	}
	in2 := newInspector(t, Config{}, nil, nil)
	v := in2.Inspect(context.Background(), req)
	if v.Verdict != event.VerdictError || !strings.Contains(v.Reason, "not the file that was executed") {
		t.Errorf("replaced path = %+v", v)
	}
}

func TestMemfdExec(t *testing.T) {
	fd, err := unix.MemfdCreate("payload", 0)
	if err != nil {
		t.Fatal(err)
	}
	mf := os.NewFile(uintptr(fd), "memfd")
	defer mf.Close()
	body, err := os.ReadFile("/usr/bin/sleep")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mf.Write(body); err != nil {
		t.Fatal(err)
	}
	// The child execs the memfd through our fd's magic link.
	_, p := running(t, fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), fd), "30")
	if !strings.HasPrefix(p.Exe, "/memfd:payload") {
		t.Fatalf("exe = %q", p.Exe)
	}
	in := newInspector(t, Config{}, nil, &Dpkg{Dir: "/var/lib/dpkg"})
	b := in.Inspect(context.Background(), request(p))
	s := sha256.Sum256(body)
	if b.SHA256 != hex.EncodeToString(s[:]) || b.Verdict != event.VerdictUnsigned {
		t.Errorf("memfd = %+v", b)
	}
}

func TestLimitsGiveErrorNotStall(t *testing.T) {
	_, p := running(t, "/bin/sleep", "30")
	in := newInspector(t, Config{MaxBytes: 1024}, nil, nil)
	b := in.Inspect(context.Background(), request(p))
	if b.Verdict != event.VerdictError || !strings.Contains(b.Reason, "over the hashing limit of 1024") {
		t.Errorf("size limit = %+v", b)
	}
	if c, ok := in.Cached(request(p)); !ok || c != b {
		t.Errorf("a file over the limit is not remembered: %v %v", c, ok)
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	in2 := newInspector(t, Config{}, nil, nil)
	b = in2.Inspect(ctx, request(p))
	if b.Verdict != event.VerdictError || b.Reason == "" {
		t.Errorf("expired context = %+v", b)
	}
	if _, err := New(Config{Workers: -1}, nil, nil, quiet()); err == nil {
		t.Error("negative workers accepted")
	}
}

// signer is an ECDSA P-256 key pair made for a test.
type signer struct {
	sv      *signature.ECDSASignerVerifier
	pubPath string
	id      string
}

func newSigner(t *testing.T, dir, name string) *signer {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".pub")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(der)
	return &signer{sv: sv, pubPath: p, id: hex.EncodeToString(s[:])}
}

// signFile writes <path>.sig as cosign sign-blob does (base64, newline).
func (s *signer) signFile(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sig, err := s.sv.SignMessage(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".sig", []byte(base64.StdEncoding.EncodeToString(sig)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return sig
}

func TestSignedTrustedAndTampered(t *testing.T) {
	dir := t.TempDir()
	s := newSigner(t, dir, "release")
	other := newSigner(t, dir, "other")
	pol, err := LoadTrustPolicy([]string{s.pubPath, other.pubPath}, "")
	if err != nil {
		t.Fatal(err)
	}
	in := newInspector(t, Config{}, pol, &Dpkg{Dir: "/var/lib/dpkg"})

	good := filepath.Join(dir, "good")
	copyFile(t, "/usr/bin/sleep", good, nil)
	s.signFile(t, good)
	_, gp := running(t, good, "30")
	b := in.Inspect(context.Background(), request(gp))
	if b.Verdict != event.VerdictSignedTrusted || b.Signer != "release" || b.KeyID != s.id || b.SHA256 != sha256File(t, good) {
		t.Errorf("signed = %+v", b)
	}

	bad := filepath.Join(dir, "bad")
	copyFile(t, "/usr/bin/sleep", bad, []byte{0}) // tampered: one byte more
	sig, err := os.ReadFile(good + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad+".sig", sig, 0o600); err != nil {
		t.Fatal(err)
	}
	_, bp := running(t, bad, "30")
	tb := in.Inspect(context.Background(), request(bp))
	if tb.Verdict != event.VerdictSignedUntrusted || !strings.Contains(tb.Reason, "does not verify with any of the trusted keys other, release") {
		t.Errorf("tampered = %+v", tb)
	}
}

func TestBundleAndSignatureDir(t *testing.T) {
	dir := t.TempDir()
	s := newSigner(t, dir, "ci")
	sigDir := filepath.Join(dir, "sigs")
	if err := os.MkdirAll(sigDir, 0o700); err != nil {
		t.Fatal(err)
	}
	pol, err := LoadTrustPolicy([]string{s.pubPath}, sigDir)
	if err != nil {
		t.Fatal(err)
	}
	in := newInspector(t, Config{}, pol, nil)

	bin := filepath.Join(dir, "bundled")
	copyFile(t, "/usr/bin/sleep", bin, []byte("b"))
	sig := s.signFile(t, bin)
	if err := os.Remove(bin + ".sig"); err != nil {
		t.Fatal(err)
	}
	digest, _ := hex.DecodeString(sha256File(t, bin))
	bu := map[string]any{
		"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
		"verificationMaterial": map[string]any{
			"publicKey": map[string]any{"hint": s.id},
		},
		"messageSignature": map[string]any{
			"messageDigest": map[string]any{"algorithm": "SHA2_256", "digest": base64.StdEncoding.EncodeToString(digest)},
			"signature":     base64.StdEncoding.EncodeToString(sig),
		},
	}
	jb, _ := json.Marshal(bu)
	if err := os.WriteFile(bin+".sigstore.json", jb, 0o600); err != nil {
		t.Fatal(err)
	}
	_, p := running(t, bin, "30")
	b := in.Inspect(context.Background(), request(p))
	if b.Verdict != event.VerdictSignedTrusted || b.KeyID != s.id || b.Signer != "ci" {
		t.Errorf("bundle = %+v", b)
	}

	// Signature directory keyed by SHA-256, for a binary with nothing
	// next to it.
	bin2 := filepath.Join(dir, "indir")
	copyFile(t, "/usr/bin/sleep", bin2, []byte("d"))
	s.signFile(t, bin2)
	if err := os.Rename(bin2+".sig", filepath.Join(sigDir, sha256File(t, bin2)+".sig")); err != nil {
		t.Fatal(err)
	}
	_, p2 := running(t, bin2, "30")
	if b := in.Inspect(context.Background(), request(p2)); b.Verdict != event.VerdictSignedTrusted {
		t.Errorf("signature dir = %+v", b)
	}
}

func TestBrokenKeyAndMalformedSignature(t *testing.T) {
	dir := t.TempDir()
	s := newSigner(t, dir, "good")
	garbage := filepath.Join(dir, "garbage.pub")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pub")
	pol, err := LoadTrustPolicy([]string{s.pubPath, garbage, missing}, "")
	if err == nil || !strings.Contains(err.Error(), "garbage.pub: not a PEM public key") || !strings.Contains(err.Error(), "missing.pub") {
		t.Fatalf("LoadTrustPolicy error = %v", err)
	}
	if len(pol.Keys) != 1 || len(pol.Broken) != 2 {
		t.Fatalf("keys %d broken %d", len(pol.Keys), len(pol.Broken))
	}
	in := newInspector(t, Config{}, pol, nil)

	// Signed by a key nobody configured: the broken keys might have been
	// it, so the verdict is error with both reasons, not untrusted.
	stranger := newSigner(t, filepath.Join(dir), "stranger")
	bin := filepath.Join(dir, "x")
	copyFile(t, "/usr/bin/sleep", bin, []byte("x"))
	stranger.signFile(t, bin)
	_, p := running(t, bin, "30")
	b := in.Inspect(context.Background(), request(p))
	if b.Verdict != event.VerdictError || !strings.Contains(b.Reason, "does not verify with trusted key good") || !strings.Contains(b.Reason, "garbage.pub") {
		t.Errorf("broken key = %+v", b)
	}

	// Malformed signature file.
	bin2 := filepath.Join(dir, "y")
	copyFile(t, "/usr/bin/sleep", bin2, []byte("y"))
	if err := os.WriteFile(bin2+".sig", []byte("%%% not base64 %%%"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, p2 := running(t, bin2, "30")
	b2 := in.Inspect(context.Background(), request(p2))
	if b2.Verdict != event.VerdictError || !strings.Contains(b2.Reason, "y.sig: not base64") || b2.SHA256 == "" {
		t.Errorf("malformed sig = %+v", b2)
	}

	// Malformed bundle.
	bin3 := filepath.Join(dir, "z")
	copyFile(t, "/usr/bin/sleep", bin3, []byte("z"))
	if err := os.WriteFile(bin3+".sigstore.json", []byte(`{"mediaType": 7}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, p3 := running(t, bin3, "30")
	b3 := in.Inspect(context.Background(), request(p3))
	if b3.Verdict != event.VerdictError || !strings.Contains(b3.Reason, "z.sigstore.json: malformed JSON") {
		t.Errorf("malformed bundle = %+v", b3)
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	s := newSigner(t, dir, "k")
	in, err := Open(LiveConfig{TrustedKeys: []string{s.pubPath}}, quiet())
	if err != nil || in == nil || len(in.policy.Load().Keys) != 1 || in.pkgs == nil {
		t.Fatalf("Open = %v, %v", in, err)
	}
	in, err = Open(LiveConfig{TrustedKeys: []string{filepath.Join(dir, "nope.pem")}, SignatureDir: filepath.Join(dir, "nodir"), DpkgDir: dir, RPMDir: filepath.Join(dir, "norpm")}, quiet())
	if err == nil || !strings.Contains(err.Error(), "nope.pem") || !strings.Contains(err.Error(), "nodir") || in == nil || in.pkgs != nil {
		t.Errorf("Open with bad key = %v, %v", in, err)
	}
}

func TestEd25519phSignature(t *testing.T) {
	dir := t.TempDir()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadED25519phSignerVerifier(priv)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pubPath := filepath.Join(dir, "ed.pub")
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	pol, err := LoadTrustPolicy([]string{pubPath}, "")
	if err != nil {
		t.Fatal(err)
	}
	in := newInspector(t, Config{}, pol, nil)
	bin := filepath.Join(dir, "edbin")
	copyFile(t, "/usr/bin/sleep", bin, []byte("e"))
	body, _ := os.ReadFile(bin)
	sig, err := sv.SignMessage(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin+".sig", []byte(base64.StdEncoding.EncodeToString(sig)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, p := running(t, bin, "30")
	if b := in.Inspect(context.Background(), request(p)); b.Verdict != event.VerdictSignedTrusted || b.Signer != "ed" {
		t.Errorf("ed25519ph = %+v", b)
	}
}

func TestRSASignature(t *testing.T) {
	dir := t.TempDir()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadRSAPKCS1v15SignerVerifier(priv, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPath := filepath.Join(dir, "rsa.pem")
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	pol, err := LoadTrustPolicy([]string{pubPath}, "")
	if err != nil {
		t.Fatal(err)
	}
	in := newInspector(t, Config{}, pol, nil)
	bin := filepath.Join(dir, "rsabin")
	copyFile(t, "/usr/bin/sleep", bin, []byte("r"))
	body, _ := os.ReadFile(bin)
	sig, err := sv.SignMessage(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin+".sig", []byte(base64.StdEncoding.EncodeToString(sig)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, p := running(t, bin, "30")
	if b := in.Inspect(context.Background(), request(p)); b.Verdict != event.VerdictSignedTrusted || b.Signer != "rsa" {
		t.Errorf("rsa = %+v", b)
	}
}

// TestVerdictFollowsPackageDatabase: a verdict is cached per database
// generation, so installing a package that claims the file changes the
// verdict of the next lookup without any restart.
func TestVerdictFollowsPackageDatabase(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "later")
	copyFile(t, "/usr/bin/sleep", bin, []byte("p"))
	db := filepath.Join(dir, "dpkg")
	if err := os.MkdirAll(filepath.Join(db, "info"), 0o700); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	d := &Dpkg{Dir: db, Recheck: time.Second, Now: func() time.Time { return now }}
	in := newInspector(t, Config{}, nil, d)
	_, p := running(t, bin, "30")
	req := request(p)
	if b := in.Inspect(context.Background(), req); b.Verdict != event.VerdictUnsigned {
		t.Fatalf("before install = %+v", b)
	}
	if _, ok := in.Cached(req); !ok {
		t.Fatal("verdict not cached")
	}
	body, _ := os.ReadFile(bin)
	sum := md5.Sum(body)
	line := hex.EncodeToString(sum[:]) + "  " + strings.TrimPrefix(bin, "/") + "\n"
	if err := os.WriteFile(filepath.Join(db, "info", "later.md5sums"), []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(db, "info"), later, later); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Second)
	if _, ok := in.Cached(req); ok {
		t.Error("a verdict from the old database generation was served")
	}
	if b := in.Inspect(context.Background(), req); b.Verdict != event.VerdictPackageVerified || b.Package != "later" {
		t.Errorf("after install = %+v", b)
	}
}

// A FIFO planted as <binary>.sig must neither stall hashing nor pass: open
// does not block, and the file is refused as not regular.
func TestSignatureFIFORefused(t *testing.T) {
	dir := t.TempDir()
	s := newSigner(t, dir, "k")
	pol, err := LoadTrustPolicy([]string{s.pubPath}, "")
	if err != nil {
		t.Fatal(err)
	}
	in := newInspector(t, Config{Timeout: 5 * time.Second}, pol, nil)
	bin := filepath.Join(dir, "f")
	copyFile(t, "/usr/bin/sleep", bin, []byte("f"))
	if err := syscall.Mkfifo(bin+".sig", 0o600); err != nil {
		t.Fatal(err)
	}
	_, p := running(t, bin, "30")
	b := in.Inspect(context.Background(), request(p))
	if b.Verdict != event.VerdictError || !strings.Contains(b.Reason, "not a regular file") || b.SHA256 == "" {
		t.Fatalf("FIFO signature = %+v", b)
	}
}

// TestPackageClaimNeedsTheHostFile: a process in a chroot (or another mount
// namespace) names its executable relative to its own root. The host's
// package database speaks of the host's file at that path; when the
// executed file is another file, the claim is not about it and must not
// turn into package-modified.
func TestPackageClaimNeedsTheHostFile(t *testing.T) {
	dir := t.TempDir()
	host := filepath.Join(dir, "host-tool")
	copyFile(t, "/usr/bin/sleep", host, nil)
	chrooted := filepath.Join(dir, "chroot-tool")
	copyFile(t, "/usr/bin/sleep", chrooted, nil)
	db := filepath.Join(dir, "dpkg")
	if err := os.MkdirAll(filepath.Join(db, "info"), 0o700); err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("%s  %s\n", strings.Repeat("ab", 16), strings.TrimPrefix(host, "/"))
	if err := os.WriteFile(filepath.Join(db, "info", "toolpkg:amd64.md5sums"), []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	in := newInspector(t, Config{}, nil, &Dpkg{Dir: db})
	_, p := running(t, chrooted, "30")
	req := request(p)
	req.Path = host // what the kernel reports for a process whose root is elsewhere
	b := in.Inspect(context.Background(), req)
	if b.Verdict != event.VerdictUnsigned || b.Package != "" || !strings.Contains(b.Reason, "not the file that was executed") {
		t.Errorf("chrooted = %+v", b)
	}
}
