package binid

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
)

// A signature added after a binary was judged unsigned (or removed after
// it was judged signed) changes the verdict: the cache is keyed by the
// signature files too.
func TestVerdictFollowsSignatureFiles(t *testing.T) {
	dir := t.TempDir()
	s := newSigner(t, dir, "rel")
	pol, err := LoadTrustPolicy([]string{s.pubPath}, "")
	if err != nil {
		t.Fatal(err)
	}
	in := newInspector(t, Config{}, pol, nil)
	bin := filepath.Join(dir, "later")
	copyFile(t, "/usr/bin/sleep", bin, []byte("L"))
	_, p := running(t, bin, "30")
	req := request(p)
	if b := in.Inspect(context.Background(), req); b.Verdict != event.VerdictUnsigned {
		t.Fatalf("before signing: %+v", b)
	}
	s.signFile(t, bin)
	time.Sleep(sigRecheck + 100*time.Millisecond)
	if b, ok := in.Cached(req); ok && b.Verdict == event.VerdictUnsigned {
		t.Error("the cache still answers unsigned after a signature appeared")
	}
	if b := in.Inspect(context.Background(), req); b.Verdict != event.VerdictSignedTrusted {
		t.Fatalf("after signing: %+v", b)
	}
	os.Remove(bin + ".sig")
	time.Sleep(sigRecheck + 100*time.Millisecond)
	if b := in.Inspect(context.Background(), req); b.Verdict != event.VerdictUnsigned {
		t.Errorf("after the signature was removed: %+v", b)
	}
}

// A symlink at <binary>.sig is not followed: it could point the sensor at a
// signature (or any file) elsewhere.
func TestSignatureSymlinkNotFollowed(t *testing.T) {
	dir := t.TempDir()
	s := newSigner(t, dir, "rel")
	pol, err := LoadTrustPolicy([]string{s.pubPath}, "")
	if err != nil {
		t.Fatal(err)
	}
	in := newInspector(t, Config{}, pol, nil)
	bin := filepath.Join(dir, "linked")
	copyFile(t, "/usr/bin/sleep", bin, []byte("S"))
	s.signFile(t, bin)
	real := filepath.Join(dir, "elsewhere.sig")
	if err := os.Rename(bin+".sig", real); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, bin+".sig"); err != nil {
		t.Fatal(err)
	}
	_, p := running(t, bin, "30")
	b := in.Inspect(context.Background(), request(p))
	if b.Verdict == event.VerdictSignedTrusted || !strings.Contains(b.Reason, "symlink refused") {
		t.Errorf("signature through a symlink: %+v", b)
	}
}

// A user's malformed <binary>.sig does not hide the valid signature in the
// admin's signature directory, and a signature beside the binary counts
// only when root owns it.
func TestUserSignatureDoesNotHideAdminSignature(t *testing.T) {
	dir := t.TempDir()
	s := newSigner(t, dir, "admin")
	sigDir := filepath.Join(dir, "sigs")
	os.MkdirAll(sigDir, 0o700)
	pol, err := LoadTrustPolicy([]string{s.pubPath}, sigDir)
	if err != nil {
		t.Fatal(err)
	}
	in := newInspector(t, Config{}, pol, nil)

	bin := filepath.Join(dir, "tool")
	copyFile(t, "/usr/bin/sleep", bin, []byte("A"))
	s.signFile(t, bin)
	if err := os.Rename(bin+".sig", filepath.Join(sigDir, sha256File(t, bin)+".sig")); err != nil {
		t.Fatal(err)
	}
	for _, owner := range []int{1000, 0} {
		if err := os.WriteFile(bin+".sig", []byte("%%% not base64 %%%"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(bin+".sig", owner, owner); err != nil {
			t.Fatal(err)
		}
		_, p := running(t, bin, "30")
		in := newInspector(t, Config{}, pol, nil)
		if b := in.Inspect(context.Background(), request(p)); b.Verdict != event.VerdictSignedTrusted || b.Signer != "admin" {
			t.Errorf("malformed %s.sig of uid %d hides the admin's signature: %+v", filepath.Base(bin), owner, b)
		}
	}

	// A valid signature beside the binary, written by a user: ignored.
	bin2 := filepath.Join(dir, "mine")
	copyFile(t, "/usr/bin/sleep", bin2, []byte("U"))
	s.signFile(t, bin2)
	if err := os.Chown(bin2+".sig", 1000, 1000); err != nil {
		t.Fatal(err)
	}
	_, p2 := running(t, bin2, "30")
	if b := in.Inspect(context.Background(), request(p2)); b.Verdict != event.VerdictUnsigned {
		t.Errorf("a user's signature beside the binary counted: %+v", b)
	}
}
