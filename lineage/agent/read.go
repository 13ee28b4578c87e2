package agent

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// ReadFileFunc reads a small file (a package.json beside an agent binary,
// an agent's config file). Implementations must bound what they read.
type ReadFileFunc func(path string) ([]byte, error)

// MaxConfigFile bounds every agent file lineage reads (package.json, an
// agent's config files): they are user-controlled.
const MaxConfigFile = 1 << 20

// ReadSmallFile reads a regular file of at most MaxConfigFile bytes without
// blocking on a FIFO. It is the default ReadFileFunc.
func ReadSmallFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if st.Size() > MaxConfigFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, MaxConfigFile)
	}
	return io.ReadAll(io.LimitReader(f, MaxConfigFile))
}
