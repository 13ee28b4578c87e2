package lineage

import (
	"strings"
	"testing"
)

func TestContainerIDFromCgroup(t *testing.T) {
	id := strings.Repeat("0123456789abcdef", 4)
	for path, want := range map[string]string{
		"/system.slice/docker-" + id + ".scope": id,
		"/docker/" + id:                         id,
		"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podx.slice/cri-containerd-" + id + ".scope": id,
		"/kubepods/besteffort/pod1234/" + id:               id,
		"/machine.slice/libpod-" + id + ".scope/container": id,
		"/machine.slice/libpod-conmon-" + id + ".scope":    "",
		"/system.slice/crio-" + id + ".scope":              id,
		"/system.slice/crio-conmon-" + id + ".scope":       "",
		"/user.slice/user-1000.slice/session-3.scope":      "",
		"/system.slice/ssh.service":                        "",
		"/":                                                "",
		"":                                                 "",
		"/docker/" + strings.ToUpper(id):                   "",
		"/docker/" + id[:63]:                               "",
	} {
		if got := ContainerID(path); got != want {
			t.Errorf("ContainerID(%q) = %q, want %q", path, got, want)
		}
	}
}
