package lineage

import (
	"strings"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// fillUsers names the user of p and, when the process has a login uid, the
// login user.
func (e *Engine) fillUsers(p *event.Process, loginUID uint32) {
	if n, ok := e.deps.Users.UserName(p.UID); ok {
		p.User = n
	}
	if loginUID != procfs.UnsetID {
		l := loginUID
		p.LoginUID = &l
		if n, ok := e.deps.Users.UserName(l); ok {
			p.LoginUser = n
		}
	}
}

// identity says who is behind an event: the OS user, the login user (which
// survives sudo and su), the human the admin mapped that login to, and how
// that was established: "config", or the SSH key that authenticated the
// login when an sshd ancestor logged it.
func (e *Engine) identity(p *event.Process, ancestry []event.Process) *event.Identity {
	id := &event.Identity{User: p.User, UID: p.UID, LoginUser: p.LoginUser, LoginUID: p.LoginUID}
	who := p.LoginUser
	if p.LoginUID == nil {
		who = p.User
	}
	if h, ok := (*e.humans.Load())[who]; ok && who != "" {
		hh := h
		id.Human = &hh
		id.VerifiedBy = "config"
	}
	if e.deps.Logins != nil && who != "" {
		for i := range ancestry {
			if a := &ancestry[i]; isSSHD(a) {
				if fp, ok := e.deps.Logins.SSHKey(a.PID, who); ok {
					id.VerifiedBy = "ssh-key:" + fp
					break
				}
			}
		}
	}
	return id
}

func isSSHD(p *event.Process) bool {
	base := p.Exe[strings.LastIndexByte(p.Exe, '/')+1:]
	return base == "sshd" || base == "sshd-session"
}
