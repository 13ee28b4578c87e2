package lineage

import (
	"strings"

	"github.com/lineaged/lineaged/sensor/procfs"
)

// containerPrefixes are the cgroup names container engines give a
// container's cgroup, before its id: docker and containerd with the
// systemd driver, CRI-O, podman. A name with "conmon" is podman's and
// CRI-O's monitor, not the container.
var containerPrefixes = []string{"docker-", "cri-containerd-", "crio-", "libpod-", "containerd-"}

// ContainerID returns the id of the container a cgroup v2 path names, ""
// when it names none: the innermost component that is a 64-hex id, alone
// (docker's and kubepods' cgroupfs driver: /docker/<id>,
// /kubepods/besteffort/pod<uid>/<id>) or as <engine>-<id>.scope (the
// systemd driver: /system.slice/docker-<id>.scope, cri-containerd-,
// crio-, libpod-).
func ContainerID(path string) string {
	for path != "" {
		i := strings.LastIndexByte(path, '/')
		c := path[i+1:]
		path = path[:max(i, 0)]
		if strings.Contains(c, "conmon") {
			continue
		}
		c = strings.TrimSuffix(c, ".scope")
		for _, p := range containerPrefixes {
			if rest, ok := strings.CutPrefix(c, p); ok {
				c = rest
				break
			}
		}
		if isContainerID(c) {
			return c
		}
	}
	return ""
}

func isContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// HostMountNS is the host's mount namespace: pid 1's, or the sensor's own
// where pid 1's cannot be read; 0 when neither can (procfs.HostMountNS).
func HostMountNS(procRoot string) uint32 { return procfs.HostMountNS(procRoot) }
