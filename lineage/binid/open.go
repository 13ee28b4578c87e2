package binid

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// LiveConfig is everything the live inspector needs. It is also the trust
// section of lineaged's configuration: the mapstructure tags are the keys,
// and fields tagged "-" are set by the program, not configured.
type LiveConfig struct {
	// Config is configured under its own key (hashing) in lineaged.
	Config `mapstructure:"-"`
	// TrustedKeys are PEM public key files; SignatureDir holds signatures
	// keyed by SHA-256 ("" for none).
	TrustedKeys  []string `mapstructure:"keys"`
	SignatureDir string   `mapstructure:"signature_dir"`
	// DpkgDir is the dpkg admin directory; default /var/lib/dpkg. When it
	// has no info directory, RPMDir (default /var/lib/rpm) is used if it
	// exists; otherwise there is no package provenance.
	DpkgDir string `mapstructure:"-"`
	RPMDir  string `mapstructure:"-"`
}

// Open builds the live inspector. A trusted key that cannot be loaded is an
// error naming it (the caller decides whether to refuse to start); the
// returned inspector is usable either way and reports verdict error, with
// the reason, for binaries that key might have vouched for.
func Open(cfg LiveConfig, log *slog.Logger) (*Inspector, error) {
	pol, keyErr := LoadTrustPolicy(cfg.TrustedKeys, cfg.SignatureDir)
	if cfg.SignatureDir != "" {
		if st, err := os.Stat(cfg.SignatureDir); err != nil || !st.IsDir() {
			keyErr = errors.Join(keyErr, fmt.Errorf("signature directory %s is not a readable directory", cfg.SignatureDir))
		}
	}
	dir := cfg.DpkgDir
	if dir == "" {
		dir = "/var/lib/dpkg"
	}
	var pkgs PackageDB
	rpmDir := cfg.RPMDir
	if rpmDir == "" {
		rpmDir = "/var/lib/rpm"
	}
	if _, err := os.Stat(filepath.Join(dir, "info")); err == nil {
		pkgs = &Dpkg{Dir: dir}
	} else if _, err := os.Stat(rpmDir); err == nil {
		pkgs = &RPM{DBDir: rpmDir}
	}
	in, err := New(cfg.Config, pol, pkgs, log)
	if err != nil {
		return nil, err
	}
	return in, keyErr
}
