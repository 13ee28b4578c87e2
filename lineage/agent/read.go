package agent

import "github.com/lineaged/lineaged/lineage/internal/safefile"

// ReadFileFunc reads a small file (a package.json beside an agent binary,
// an agent's config file). Implementations must bound what they read.
type ReadFileFunc func(path string) ([]byte, error)

// MaxConfigFile bounds every agent file lineage reads (package.json, an
// agent's config files): they are user-controlled.
const MaxConfigFile = 1 << 20

// ReadSmallFile reads a regular file of at most MaxConfigFile bytes without
// blocking on a FIFO. It is the default ReadFileFunc.
func ReadSmallFile(path string) ([]byte, error) {
	return safefile.ReadRegular(path, safefile.Options{MaxBytes: MaxConfigFile})
}
