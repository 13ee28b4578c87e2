package lineage

import (
	"fmt"
	"syscall"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// mapKind fills out's kind and payload from a raw event of a running
// process (exit, file, connect, deny) or a loss; false when the kind is
// not one of those or its payload is missing.
func mapKind(ev sensor.Event, out *event.Event) bool {
	switch ev.Kind {
	case sensor.KindLoss:
		out.Kind, out.Loss = event.KindSensorLoss, lossEvent(ev.Loss)
	case sensor.KindExit:
		if ev.Exit == nil {
			return false
		}
		out.Kind = event.KindProcessExit
		out.Exit = &event.Exit{Code: ev.Exit.Code, Signal: ev.Exit.Signal, CoreDumped: ev.Exit.CoreDumped, RepeatedOpens: ev.Exit.RepeatedOpens}
	case sensor.KindOpen, sensor.KindUnlink, sensor.KindRename, sensor.KindChmod, sensor.KindFileModify:
		if ev.File == nil {
			return false
		}
		out.Kind, out.File = fileEvent(ev.File)
	case sensor.KindConnect:
		if ev.Connect == nil {
			return false
		}
		out.Kind, out.Net = netKind(ev.Connect), netEvent(ev.Connect)
	case sensor.KindIOURing:
		if ev.IOURing == nil {
			return false
		}
		out.Kind, out.IOURing = ioURingEvent(ev.IOURing)
	case sensor.KindDeny:
		if ev.Deny == nil {
			return false
		}
		// The policy stage turns it into policy events.
		d := ev.Deny
		out.Kind = event.KindPolicyAction
		out.Deny = &event.Deny{Path: d.Path, PathTruncated: d.PathTruncated, RuleIndex: d.RuleIndex, Rule: d.Rule, Action: d.Action.String()}
	default:
		return false
	}
	return true
}

// lossEvent says what the kernel dropped; a loss with no detail counts one.
func lossEvent(l *sensor.Loss) *event.Loss {
	out := event.Loss{Count: 1}
	if l != nil {
		out = event.Loss{Where: l.Where, Count: l.Count}
		if l.Of != 0 {
			out.Of = l.Of.String()
		}
		if l.What != "" {
			out.Of = l.What
		}
	}
	return &out
}

func fileEvent(f *sensor.File) (string, *event.File) {
	out := &event.File{Path: f.Path, PathTruncated: f.PathTruncated, Flags: f.Flags, SyscallABI: fileABI(f)}
	if f.Result < 0 {
		// A failure's negative errno; a successful open's descriptor
		// number is not a result worth reporting.
		out.Result = f.Result
	}
	var kind string
	switch f.Op {
	case sensor.FileOpen:
		kind = event.KindFileOpen
		switch f.Flags & syscall.O_ACCMODE {
		case syscall.O_RDONLY:
			out.Mode = event.ModeRead
		case syscall.O_WRONLY:
			out.Mode = event.ModeWrite
		default:
			out.Mode = event.ModeReadWrite
		}
		out.Created = f.Created
		if f.Created {
			m := f.Mode
			out.Perm = &m
		}
	case sensor.FileUnlink:
		kind = event.KindFileDelete
	case sensor.FileRename:
		kind = event.KindFileRename
		out.NewPath = f.NewPath
	case sensor.FileChmod:
		kind = event.KindFileChmod
		m := f.Mode
		out.Perm = &m
	default:
		if !fileModify(f, out) {
			kind = event.KindFileOpen
			break
		}
		kind = event.KindFileModify
	}
	fileSource(f, out)
	return kind, out
}

func netEvent(c *sensor.Connect) *event.Net {
	n := &event.Net{Result: c.Result}
	switch c.Protocol {
	case syscall.IPPROTO_TCP:
		n.Protocol = "tcp"
	case syscall.IPPROTO_UDP:
		n.Protocol = "udp"
	default:
		n.Protocol = fmt.Sprintf("ip-proto-%d", c.Protocol)
	}
	switch c.Family {
	case syscall.AF_INET:
		n.Family = "ipv4"
	case syscall.AF_INET6:
		n.Family = "ipv6"
	default:
		n.Family = fmt.Sprintf("af-%d", c.Family)
	}
	if c.Dst.IsValid() {
		n.DstIP = c.Dst.Addr().Unmap().String()
		n.DstPort = c.Dst.Port()
	}
	if c.Src.IsValid() {
		n.SrcIP = c.Src.Addr().Unmap().String()
		n.SrcPort = c.Src.Port()
	}
	netOpFields(c, n)
	return n
}
