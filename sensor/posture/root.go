package posture

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/shirou/gopsutil/v3/common"
)

// maxFileSize bounds every read: the files checks look at are small (sysctls,
// sshd_config, apt snippets), and a hostile or corrupt tree must not make the
// sensor allocate without limit.
const maxFileSize = 1 << 20

// Root is the directory checks read host files from: "/" on a live host, a
// fake tree in tests, or a host root mounted elsewhere. Paths passed to its
// methods are absolute host paths ("/proc/sys/kernel/kptr_restrict").
type Root string

// Path maps an absolute host path into the root.
func (r Root) Path(p string) string {
	return filepath.Join(string(r), p)
}

// Live reports whether the root is the running system's "/", so facts that
// only the live kernel can give (netlink, sockets) describe the same host.
func (r Root) Live() bool {
	return filepath.Clean(string(r)) == "/"
}

// gopsutil points gopsutil's readers at the root: its process, socket and
// host facts then describe the same tree as the files the checks read. The
// context's values take precedence over HOST_PROC etc. in the environment.
func (r Root) gopsutil(ctx context.Context) context.Context {
	return context.WithValue(ctx, common.EnvKey, common.EnvMap{
		common.HostProcEnvKey: r.Path("/proc"),
		common.HostSysEnvKey:  r.Path("/sys"),
		common.HostEtcEnvKey:  r.Path("/etc"),
		common.HostVarEnvKey:  r.Path("/var"),
		common.HostRunEnvKey:  r.Path("/run"),
		common.HostDevEnvKey:  r.Path("/dev"),
		common.HostRootEnvKey: string(r),
	})
}

// ReadFile reads a file under the root, refusing files larger than 1 MiB.
func (r Root) ReadFile(p string) ([]byte, error) {
	f, err := os.Open(r.Path(p))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("read %s: larger than %d bytes", p, maxFileSize)
	}
	return b, nil
}

// ReadDir lists a directory under the root, sorted by name.
func (r Root) ReadDir(p string) ([]os.DirEntry, error) {
	return os.ReadDir(r.Path(p))
}

// Exists reports whether p exists under the root (following symlinks). Errors
// other than "does not exist" are returned so a permission problem is not
// mistaken for absence.
func (r Root) Exists(p string) (bool, error) {
	_, err := os.Stat(r.Path(p))
	if err == nil {
		return true, nil
	}
	if os.IsNotExist(err) {
		return false, nil
	}
	return false, err
}

// Lexists is Exists without following a final symlink: an enablement link
// of systemd is absolute, so under a root other than "/" its target would
// resolve outside the tree.
func (r Root) Lexists(p string) (bool, error) {
	_, err := os.Lstat(r.Path(p))
	if err == nil {
		return true, nil
	}
	if os.IsNotExist(err) {
		return false, nil
	}
	return false, err
}

// Glob expands pattern (an absolute host path with filepath.Match syntax)
// under the root and returns host paths in lexical order.
func (r Root) Glob(pattern string) ([]string, error) {
	m, err := filepath.Glob(r.Path(pattern))
	if err != nil {
		return nil, fmt.Errorf("glob %q: %w", pattern, err)
	}
	out := make([]string, 0, len(m))
	for _, p := range m {
		rel, err := filepath.Rel(string(r), p)
		if err != nil {
			return nil, err
		}
		out = append(out, "/"+rel)
	}
	return out, nil
}

// readInt reads a file holding one decimal integer (a sysctl).
func (r Root) readInt(p string) (int64, error) {
	b, err := r.ReadFile(p)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: not an integer: %q", p, truncate(s, 32))
	}
	return v, nil
}

// truncate shortens s for use in a detail or error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
