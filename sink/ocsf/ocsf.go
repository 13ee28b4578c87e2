// Package ocsf encodes lineaged events as OCSF 1.8.0 events: Process
// Activity (1007), File System Activity (1001), Network Activity (4001),
// Device Config State (5002), Device Config State Change (5019), Detection
// Finding (2004), Application Lifecycle (6002) for the sensor's own start
// and stop, and the Base Event (0) for loss reports. docs/ocsf.md is the
// field-by-field mapping.
//
// Like the native encoder it is a hand-written appender that writes into a
// caller-owned buffer.
package ocsf

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/jsonw"
	"github.com/lineaged/lineaged/sink/internal/shared"
	"github.com/lineaged/lineaged/sink/internal/v1obj"
	"github.com/lineaged/lineaged/sink/native"
)

// Version is the OCSF schema version written in metadata.version.
const Version = "1.8.0"

// SchemaName is the value of the Kafka schema header for OCSF output.
const SchemaName = "ocsf/" + Version

// ContentType is the media type of one encoded event.
const ContentType = "application/json"

// Encoder writes OCSF events. It is immutable and safe for concurrent use.
type Encoder struct {
	// ProductVersion is metadata.product.version (the sensor version).
	ProductVersion string
	// Argv bounds cmd_line the way the native format bounds argv.
	Argv native.Encoder
	// Ancestry is event.AncestryCompact ("" too, the default),
	// event.AncestryFull or event.AncestrySession (compact, and an agent
	// session's events end their ancestry at the session's root). Compact
	// bounds the command line of
	// parent_process and of each ancestry entry to
	// event.MaxAncestorArgvBytes and keeps only sha256, verdict and signer
	// of the ancestors' binaries under unmapped.lineaged.binaries.
	Ancestry string
	// V1 names lineaged/v1 in metadata.log_name and unmapped.lineaged, and
	// writes the ancestry whole, as the release before lineaged/v2 did.
	V1 bool
	// MaxBytes is the size budget of one encoded event (0: none): an event
	// over it is trimmed and marked in unmapped.lineaged.truncated
	// (budget.go).
	MaxBytes int
	// Shared, when set, keeps the encoded lineage (parent_process and
	// ancestry) and the ancestors' entries of unmapped.lineaged.binaries
	// of events that share one ancestry slice, and copies them into the
	// next (sink/internal/shared). It must serve this configuration alone.
	Shared *native.SharedAncestry
}

// The parts of an ancestry the encoder keeps in Shared.
const (
	partLineage  shared.Part = 1 // parent_process and ancestry, in a process object
	partBinaries shared.Part = 2 // the ancestors' entries of unmapped.lineaged.binaries
)

// compact reports whether the ancestry is written compact.
func (e Encoder) compact() bool {
	return !e.V1 && e.Ancestry != event.AncestryFull
}

// ContentType returns the media type of the output.
func (Encoder) ContentType() string { return ContentType }

// Schema names the output format.
func (Encoder) Schema() string { return SchemaName }

// Errors for events that cannot be encoded.
var (
	ErrNilEvent = errors.New("ocsf: nil event")
)

// Connect results (negative errno) that pick the Network Activity.
const (
	errConnRefused = -111 // ECONNREFUSED: activity 5, Refuse
	errInProgress  = -115 // EINPROGRESS: a non-blocking connect under way
)

type class struct {
	uid, category      int
	name, categoryName string
	activity           int
	activityName       string
}

func classify(ev *event.Event) (class, error) {
	sys := func(uid int, name string, act int, actName string) class {
		return class{uid: 1000 + uid, category: 1, name: name, categoryName: "System Activity", activity: act, activityName: actName}
	}
	var c class
	switch ev.Kind {
	case event.KindProcessExec, event.KindProcessFork:
		c = sys(7, "Process Activity", 1, "Launch")
	case event.KindProcessExit:
		c = sys(7, "Process Activity", 2, "Terminate")
	case event.KindProcessBinary:
		// The late hash of a launched process (docs/ocsf.md).
		c = sys(7, "Process Activity", 99, "Other")
	case event.KindFileOpen:
		c = sys(1, "File System Activity", 14, "Open")
		if ev.File != nil && ev.File.Created {
			c.activity, c.activityName = 1, "Create"
		}
	case event.KindFileDelete:
		c = sys(1, "File System Activity", 4, "Delete")
	case event.KindFileRename:
		c = sys(1, "File System Activity", 5, "Rename")
	case event.KindFileChmod:
		c = sys(1, "File System Activity", 7, "Set Security")
	case event.KindFileModify:
		c = fileModifyClass(ev, sys)
	case event.KindNetConnect:
		c = class{uid: 4001, category: 4, name: "Network Activity", categoryName: "Network Activity", activity: 1, activityName: "Open"}
		switch {
		case ev.Net == nil || ev.Net.Result == 0 || ev.Net.Result == errInProgress:
			// Connected, or a non-blocking connect under way.
		case ev.Net.Result == errConnRefused:
			c.activity, c.activityName = 5, "Refuse"
		default:
			c.activity, c.activityName = 4, "Fail"
		}
	case event.KindNetSend, event.KindNetListen:
		c = netOpClass(ev)
	case event.KindPostureSample:
		c = class{uid: 5002, category: 5, name: "Device Config State", categoryName: "Discovery", activity: 2, activityName: "Collect"}
	case event.KindPostureChange:
		c = class{uid: 5019, category: 5, name: "Device Config State Change", categoryName: "Discovery", activity: 1, activityName: "Log"}
	case event.KindPolicyAlert:
		c = class{uid: 2004, category: 2, name: "Detection Finding", categoryName: "Findings", activity: 1, activityName: "Create"}
	case event.KindPolicyAction:
		// A finding of its own (finding_info.uid is its event_id, the
		// alert it follows is in related_events): created, not an update.
		c = class{uid: 2004, category: 2, name: "Detection Finding", categoryName: "Findings", activity: 1, activityName: "Create"}
	case event.KindSensorStart:
		c = class{uid: 6002, category: 6, name: "Application Lifecycle", categoryName: "Application Activity", activity: 3, activityName: "Start"}
	case event.KindSensorStop:
		c = class{uid: 6002, category: 6, name: "Application Lifecycle", categoryName: "Application Activity", activity: 4, activityName: "Stop"}
	case event.KindAgentToolCall:
		// An agent's tool call, allowed or denied before it ran. OCSF
		// 1.8.0 has no class for it (API Activity needs an API endpoint
		// and a network source): a Base Event, the call under
		// unmapped.lineaged.tool (docs/ocsf.md).
		c = class{uid: 0, category: 0, name: "Base Event", categoryName: "Uncategorized", activity: 99, activityName: "Other"}
	case event.KindAgentSessionStart, event.KindAgentSessionEnd:
		// An agent session's summary: no OCSF 1.8.0 class holds it (the
		// ai_agent object is 1.9-dev). A Base Event, the summary under
		// unmapped.lineaged.session (docs/ocsf.md).
		c = class{uid: 0, category: 0, name: "Base Event", categoryName: "Uncategorized", activity: 99, activityName: "Other"}
	case event.KindSensorLoss, event.KindSensorCheckpoint:
		c = class{uid: 0, category: 0, name: "Base Event", categoryName: "Uncategorized", activity: 99, activityName: "Other"}
	case event.KindIOURingSetup, event.KindIOURingSubmit:
		c = ioURingClass(ev, sys)
	case event.KindSensorTamper:
		// Something done to the sensor: a finding (docs/ocsf.md).
		c = class{uid: 2004, category: 2, name: "Detection Finding", categoryName: "Findings", activity: 1, activityName: "Create"}
	default:
		return c, fmt.Errorf("ocsf: event %s: kind %q has no OCSF mapping", ev.EventID, ev.Kind)
	}
	return c, nil
}

func intField(dst []byte, key string, v int64) []byte {
	return jsonw.AppendInt(jsonw.AppendKey(dst, key), v)
}

func msField(dst []byte, key string, t time.Time) []byte {
	return jsonw.AppendInt(jsonw.AppendKey(dst, key), t.UnixMilli())
}

// constStr writes a string the encoder itself chose (class and activity
// captions): plain ASCII, escaped all the same.
func constStr(dst []byte, key, v string) []byte {
	dst, _ = jsonw.AppendString(jsonw.AppendKey(dst, key), v)
	return dst
}

func rawField(dst []byte, key, raw string) []byte {
	return append(jsonw.AppendKey(dst, key), raw...)
}

func base(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 && i < len(p)-1 {
		return p[i+1:]
	}
	return p
}

// severity maps alert severities to OCSF severity_id.
func severity(s string) (int, string) {
	switch strings.ToLower(s) {
	case "info", "informational":
		return 1, "Informational"
	case "low":
		return 2, "Low"
	case "medium":
		return 3, "Medium"
	case "high":
		return 4, "High"
	case "critical":
		return 5, "Critical"
	}
	return 99, "Other"
}

// Append appends ev as one OCSF JSON object to dst.
func (e Encoder) Append(dst []byte, ev *event.Event) ([]byte, error) {
	if e.Ancestry == event.AncestrySession && !e.V1 {
		ev = event.AtRoot(ev)
	}
	if e.MaxBytes > 0 {
		return e.appendBudget(dst, ev)
	}
	return e.appendEvent(dst, ev)
}

func (e Encoder) appendEvent(dst []byte, ev *event.Event) ([]byte, error) {
	if ev == nil {
		return dst, ErrNilEvent
	}
	if ev.EventID == "" {
		return dst, fmt.Errorf("ocsf: event has no event_id")
	}
	c, err := classify(ev)
	if err != nil {
		return dst, err
	}
	st := v1obj.Marks{Limit: 16}
	dst = append(dst, '{')
	dst = intField(dst, "class_uid", int64(c.uid))
	dst = constStr(dst, "class_name", c.name)
	dst = intField(dst, "category_uid", int64(c.category))
	dst = constStr(dst, "category_name", c.categoryName)
	dst = intField(dst, "activity_id", int64(c.activity))
	dst = constStr(dst, "activity_name", c.activityName)
	dst = intField(dst, "type_uid", int64(c.uid*100+c.activity))
	// "<class>: <activity>", the OCSF convention, without building the string.
	dst = append(jsonw.AppendKey(dst, "type_name"), '"')
	dst, _ = jsonw.AppendStringBody(dst, c.name)
	dst = append(dst, ':', ' ')
	dst, _ = jsonw.AppendStringBody(dst, c.activityName)
	dst = append(dst, '"')
	sevID, sevName := 1, "Informational"
	if ev.Alert != nil {
		sevID, sevName = severity(ev.Alert.Severity)
		if sevID == 99 {
			sevName = ev.Alert.Severity
		}
	}
	if ev.Tamper != nil {
		sevID, sevName = 4, "High"
	}
	dst = intField(dst, "severity_id", int64(sevID))
	dst = st.Str(dst, "severity", "", sevName)
	dst = msField(dst, "time", ev.Time)
	dst = e.metadata(&st, dst, ev, c)
	if ev.Host != nil {
		dst = device(&st, dst, ev.Host, ev.Posture)
	}
	a := ev.Agent
	switch c.uid {
	case 1007:
		if a != nil {
			dst = messageContext(&st, dst, a)
		}
		if ev.Process != nil {
			actor := ev.Process
			if c.activity == 1 && len(ev.Ancestry) > 0 {
				actor = &ev.Ancestry[0] // the parent launched it
			}
			dst = e.actor(&st, dst, ev, actor, false)
			dst = jsonw.AppendKey(dst, "process")
			dst = e.process(&st, dst, "process", ev.Process, ev.Ancestry, true, 0)
		}
		if ev.Exit != nil {
			dst = intField(dst, "exit_code", int64(ev.Exit.Code))
		}
		if ev.Kind == event.KindProcessFork {
			dst = intField(dst, "launch_type_id", 2)
			dst = rawField(dst, "launch_type", `"Fork"`)
		} else if c.activity == 1 {
			dst = intField(dst, "launch_type_id", 3)
			dst = rawField(dst, "launch_type", `"Exec"`)
		}
	case 1001:
		if ev.Process != nil {
			dst = e.actor(&st, dst, ev, ev.Process, true)
		}
		if f := ev.File; f != nil {
			dst = append(jsonw.AppendKey(dst, "file"), '{')
			dst = st.Str(dst, "name", "file", base(f.Path))
			dst = st.Str(dst, "path", "file", f.Path)
			dst = intField(dst, "type_id", 0)
			dst = rawField(dst, "type", `"Unknown"`)
			dst = append(dst, '}')
			if f.NewPath != "" {
				dst = append(jsonw.AppendKey(dst, "file_result"), '{')
				dst = st.Str(dst, "name", "file_result", base(f.NewPath))
				dst = st.Str(dst, "path", "file_result", f.NewPath)
				dst = intField(dst, "type_id", 0)
				dst = rawField(dst, "type", `"Unknown"`)
				dst = append(dst, '}')
			}
			dst = status(dst, f.Result)
		} else if u := ev.IOURing; u != nil {
			dst = ioURingFile(&st, dst, u)
		}
	case 4001:
		if ev.Process != nil {
			dst = e.actor(&st, dst, ev, ev.Process, true)
		}
		if n := ev.Net; n != nil {
			dst = netEndpoints(&st, dst, ev.Kind, n)
			dst = append(jsonw.AppendKey(dst, "connection_info"), '{')
			dst = netDirection(dst, ev.Kind)
			dst = st.Str(dst, "protocol_name", "connection_info", n.Protocol)
			switch n.Protocol {
			case "tcp":
				dst = intField(dst, "protocol_num", 6)
			case "udp":
				dst = intField(dst, "protocol_num", 17)
			}
			switch n.Family {
			case "ipv4", "inet":
				dst = intField(dst, "protocol_ver_id", 4)
				dst = rawField(dst, "protocol_ver", `"Internet Protocol version 4 (IPv4)"`)
			case "ipv6", "inet6":
				dst = intField(dst, "protocol_ver_id", 6)
				dst = rawField(dst, "protocol_ver", `"Internet Protocol version 6 (IPv6)"`)
			}
			dst = append(dst, '}')
			if c.activity == 4 || c.activity == 5 || ev.Kind != event.KindNetConnect && n.Result < 0 {
				dst = status(dst, n.Result)
			}
		} else if u := ev.IOURing; u != nil {
			dst = ioURingNet(&st, dst, u, c.activity == 7)
		}
	case 5002:
		if p := ev.Posture; p != nil && len(p.Checks) > 0 {
			dst = assessments(&st, dst, p)
		}
	case 5019:
		if p := ev.Posture; p != nil {
			if p.Compliant {
				dst = intField(dst, "security_level_id", 1)
				dst = rawField(dst, "security_level", `"Secure"`)
			} else {
				dst = intField(dst, "security_level_id", 2)
				dst = rawField(dst, "security_level", `"At Risk"`)
				dst = append(jsonw.AppendKey(dst, "security_states"), '[', '{')
				dst = intField(dst, "state_id", 23)
				dst = rawField(dst, "state", `"Compliance failure"`)
				dst = append(dst, '}', ']')
			}
		}
	case 2004:
		if al := ev.Alert; al != nil {
			dst = append(jsonw.AppendKey(dst, "finding_info"), '{')
			dst = st.Str(dst, "uid", "finding_info", ev.EventID)
			dst = st.Str(dst, "title", "finding_info", al.Rule)
			dst = st.OptStr(dst, "desc", "finding_info", al.Message)
			dst = append(jsonw.AppendKey(dst, "analytic"), '{')
			dst = st.Str(dst, "name", "finding_info.analytic", al.Rule)
			dst = intField(dst, "type_id", 1)
			dst = rawField(dst, "type", `"Rule"`)
			dst = append(dst, '}')
			if len(al.Mitre) > 0 {
				dst = attacks(&st, dst, al.Mitre)
			}
			if al.TriggerEventID != "" {
				dst = append(jsonw.AppendKey(dst, "related_events"), '[', '{')
				dst = st.Str(dst, "uid", "finding_info.related_events", al.TriggerEventID)
				dst = append(dst, '}', ']')
			}
			dst = append(dst, '}')
			dst = jsonw.AppendBool(jsonw.AppendKey(dst, "is_alert"), true)
			dst = st.Str(dst, "message", "", al.Message)
		}
		if tp := ev.Tamper; tp != nil && ev.Alert == nil {
			dst = tamperFinding(&st, dst, ev.EventID, tp)
		}
		if ev.Process != nil {
			dst = append(jsonw.AppendKey(dst, "evidences"), '[', '{')
			dst = e.actor(&st, dst, ev, ev.Process, false)
			dst = jsonw.AppendKey(dst, "process")
			dst = e.process(&st, dst, "evidences.process", ev.Process, ev.Ancestry, true, 0)
			if f := ev.File; f != nil {
				dst = append(jsonw.AppendKey(dst, "file"), '{')
				dst = st.Str(dst, "name", "evidences.file", base(f.Path))
				dst = st.Str(dst, "path", "evidences.file", f.Path)
				dst = intField(dst, "type_id", 0)
				dst = rawField(dst, "type", `"Unknown"`)
				dst = append(dst, '}')
			}
			dst = append(dst, '}', ']')
		}
	case 6002:
		dst = append(jsonw.AppendKey(dst, "app"), '{')
		dst = rawField(dst, "name", `"lineaged"`)
		dst = rawField(dst, "vendor_name", `"lineaged"`)
		ver := e.ProductVersion
		if ev.Sensor != nil && ev.Sensor.Version != "" {
			ver = ev.Sensor.Version
		}
		dst = st.OptStr(dst, "version", "app", ver)
		if ev.Sensor != nil {
			dst = st.OptStr(dst, "uid", "app", ev.Sensor.InstanceID)
		}
		dst = append(dst, '}')
		if ev.Sensor != nil && ev.Sensor.Reason != "" {
			dst = st.Str(dst, "message", "", ev.Sensor.Reason)
		}
	case 0:
		if l := ev.Loss; l != nil {
			dst = jsonw.AppendKey(dst, "message")
			msg := "events lost: " + strconv.FormatUint(l.Count, 10) + " at " + l.Where
			dst, _ = jsonw.AppendString(dst, msg)
			dst = jsonw.AppendUint(jsonw.AppendKey(dst, "count"), l.Count)
			if !l.From.IsZero() {
				dst = msField(dst, "start_time", l.From)
				dst = msField(dst, "end_time", l.To)
			}
		}
	}
	dst = e.unmapped(&st, dst, ev)
	return append(dst, '}'), nil
}

func status(dst []byte, result int32) []byte {
	if result == 0 {
		dst = intField(dst, "status_id", 1)
		return rawField(dst, "status", `"Success"`)
	}
	dst = intField(dst, "status_id", 2)
	dst = rawField(dst, "status", `"Failure"`)
	dst = jsonw.AppendKey(dst, "status_code")
	dst = append(dst, '"')
	dst = strconv.AppendInt(dst, int64(result), 10)
	return append(dst, '"')
}

func (e Encoder) metadata(st *v1obj.Marks, dst []byte, ev *event.Event, c class) []byte {
	dst = append(jsonw.AppendKey(dst, "metadata"), '{')
	dst = rawField(dst, "version", `"`+Version+`"`)
	dst = append(jsonw.AppendKey(dst, "product"), '{')
	dst = rawField(dst, "name", `"lineaged"`)
	dst = rawField(dst, "vendor_name", `"lineaged"`)
	dst = st.OptStr(dst, "version", "metadata.product", e.ProductVersion)
	dst = append(dst, '}')
	dst = st.Str(dst, "uid", "metadata", ev.EventID)
	dst = st.Str(dst, "event_code", "metadata", ev.Kind)
	if e.V1 {
		dst = rawField(dst, "log_name", `"`+event.SchemaV1+`"`)
	} else {
		dst = rawField(dst, "log_name", `"`+event.Schema+`"`)
	}
	dst = append(jsonw.AppendKey(dst, "profiles"), '[')
	dst = append(dst, `"host","linux/linux_users"`...)
	if c.uid == 1007 && ev.Agent != nil {
		dst = append(dst, `,"ai_operation"`...)
	}
	dst = append(dst, ']')
	return append(dst, '}')
}

func device(st *v1obj.Marks, dst []byte, h *event.Host, p *event.Posture) []byte {
	dst = append(jsonw.AppendKey(dst, "device"), '{')
	dst = intField(dst, "type_id", 0)
	dst = rawField(dst, "type", `"Unknown"`)
	dst = st.Str(dst, "hostname", "device", h.Hostname)
	dst = st.Str(dst, "uid", "device", h.MachineID)
	dst = st.OptStr(dst, "boot_uid", "device", h.BootID)
	dst = append(jsonw.AppendKey(dst, "os"), '{')
	name := h.OS
	if name == "" {
		name = "Linux"
	}
	dst = st.Str(dst, "name", "device.os", name)
	dst = intField(dst, "type_id", 200)
	dst = rawField(dst, "type", `"Linux"`)
	dst = st.OptStr(dst, "kernel_release", "device.os", h.Kernel)
	dst = append(dst, '}')
	if p != nil {
		dst = jsonw.AppendBool(jsonw.AppendKey(dst, "is_compliant"), p.Compliant)
	}
	return append(dst, '}')
}

// aiRole maps agent roles to message_context.ai_role_id.
func aiRole(role string) (int, string) {
	switch role {
	case event.RoleRoot:
		return 4, "Agent"
	case event.RoleTool, event.RoleMCPServer:
		return 3, "Tool"
	}
	// A descendant of a tool (a process the tool's process started), a
	// hook: no OCSF role fits; Other, with the lineaged role as caption.
	return 99, role
}

// messageContext carries the agent session in the ai_operation profile:
// uid is the session, application the agent.
func messageContext(st *v1obj.Marks, dst []byte, a *event.Agent) []byte {
	dst = append(jsonw.AppendKey(dst, "message_context"), '{')
	uid := a.SessionID
	if uid == "" {
		uid = a.RootExecID
	}
	dst = st.Str(dst, "uid", "message_context", uid)
	dst = st.Str(dst, "name", "message_context", a.Name+" session")
	id, name := aiRole(a.Role)
	dst = intField(dst, "ai_role_id", int64(id))
	dst = st.Str(dst, "ai_role", "message_context", name)
	dst = append(jsonw.AppendKey(dst, "application"), '{')
	dst = st.Str(dst, "name", "message_context.application", a.Name)
	dst = st.OptStr(dst, "version", "message_context.application", a.Version)
	dst = st.Str(dst, "uid", "message_context.application", a.RootExecID)
	dst = append(dst, '}')
	return append(dst, '}')
}

func (e Encoder) actor(st *v1obj.Marks, dst []byte, ev *event.Event, p *event.Process, withLineage bool) []byte {
	dst = append(jsonw.AppendKey(dst, "actor"), '{')
	if p != nil {
		dst = jsonw.AppendKey(dst, "process")
		anc := []event.Process(nil)
		if withLineage {
			anc = ev.Ancestry
		}
		limit := 0
		if p != ev.Process && e.compact() {
			limit = event.MaxAncestorArgvBytes // the parent, as actor of an exec
		}
		dst = e.process(st, dst, "actor.process", p, anc, withLineage, limit)
	}
	dst = user(st, dst, ev, p)
	if a := ev.Agent; a != nil {
		dst = st.Str(dst, "app_name", "actor", a.Name)
		uid := a.SessionID
		if uid == "" {
			uid = a.RootExecID
		}
		dst = st.Str(dst, "app_uid", "actor", uid)
	}
	return append(dst, '}')
}

func user(st *v1obj.Marks, dst []byte, ev *event.Event, p *event.Process) []byte {
	id := ev.Identity
	if id == nil && p == nil {
		return dst
	}
	dst = append(jsonw.AppendKey(dst, "user"), '{')
	if id != nil {
		dst = st.OptStr(dst, "name", "actor.user", id.User)
		dst = jsonw.AppendKey(dst, "uid")
		dst = append(strconv.AppendUint(append(dst, '"'), uint64(id.UID), 10), '"')
		if h := id.Human; h != nil {
			dst = st.Str(dst, "full_name", "actor.user", h.Name)
			if strings.Contains(h.Email, "@") {
				dst = st.Str(dst, "email_addr", "actor.user", h.Email)
			}
		}
	} else {
		dst = st.OptStr(dst, "name", "actor.user", p.User)
		dst = jsonw.AppendKey(dst, "uid")
		dst = append(strconv.AppendUint(append(dst, '"'), uint64(p.UID), 10), '"')
	}
	return append(dst, '}')
}

// process writes an OCSF process object. With lineage, it also carries
// parent_process (the first ancestor, with its file hashes) and ancestry.
// A positive limit bounds its own cmd_line (an ancestor's, in compact
// ancestry).
func (e Encoder) process(st *v1obj.Marks, dst []byte, path string, p *event.Process, anc []event.Process, lineage bool, limit int) []byte {
	dst = append(dst, '{')
	dst = intField(dst, "pid", int64(p.PID))
	dst = st.StrAs(dst, "uid", path, "uid", p.ExecID)
	exe := p.Exe
	if exe == "" && len(p.Argv) > 0 {
		exe = p.Argv[0]
	}
	dst = st.OptStrAs(dst, "name", path, "name", base(exe))
	dst = st.OptStrAs(dst, "path", path, "path", p.Exe)
	if len(p.Argv) > 0 {
		dst = jsonw.AppendKey(dst, "cmd_line")
		var raw string
		var bad bool
		dst, raw, bad = e.cmdLine(dst, p.Argv, limit)
		if bad {
			st.Bad("", path+".cmd_line", raw) // rare: invalid UTF-8
		}
	}
	if !p.StartTime.IsZero() {
		dst = msField(dst, "created_time", p.StartTime)
	}
	dst = st.OptStrAs(dst, "working_directory", path, "working_directory", p.Cwd)
	// linux/linux_users profile.
	dst = intField(dst, "euid", int64(p.EUID))
	if p.LoginUID != nil {
		dst = intField(dst, "auid", int64(*p.LoginUID))
	}
	dst = append(jsonw.AppendKey(dst, "user"), '{')
	dst = st.OptStrAs(dst, "name", path, "user.name", p.User)
	dst = jsonw.AppendKey(dst, "uid")
	dst = append(strconv.AppendUint(append(dst, '"'), uint64(p.UID), 10), '"')
	dst = append(dst, '}')
	if p.TTY != "" {
		dst = append(jsonw.AppendKey(dst, "session"), '{')
		dst = st.StrAs(dst, "terminal", path, "session.terminal", p.TTY)
		dst = append(dst, '}')
	}
	if b := p.Binary; b != nil {
		dst = append(jsonw.AppendKey(dst, "file"), '{')
		dst = st.StrAs(dst, "name", path, "file.name", base(b.Path))
		dst = st.StrAs(dst, "path", path, "file.path", b.Path)
		dst = intField(dst, "type_id", 1)
		dst = rawField(dst, "type", `"Regular File"`)
		dst = intField(dst, "size", b.Size)
		if !b.Mtime.IsZero() {
			dst = msField(dst, "modified_time", b.Mtime)
		}
		if b.SHA256 != "" {
			dst = append(jsonw.AppendKey(dst, "hashes"), '[', '{')
			dst = intField(dst, "algorithm_id", 3)
			dst = rawField(dst, "algorithm", `"SHA-256"`)
			dst = st.StrAs(dst, "value", path, "file.hashes.value", b.SHA256)
			dst = append(dst, '}', ']')
		}
		dst = append(dst, '}')
	}
	if lineage && len(anc) > 0 {
		if b, keep := e.Shared.Lookup(anc, partLineage); b != nil {
			dst = append(dst, b...)
		} else {
			start, marks, room := len(dst), st.Count(), st.Room()
			dst = e.lineage(st, dst, path, anc)
			if keep && room && st.Count() == marks {
				e.Shared.Keep(anc, partLineage, dst[start:])
			}
		}
	}
	return append(dst, '}')
}

// lineage writes a process object's parent_process (the first ancestor,
// with its file hashes) and ancestry.
func (e Encoder) lineage(st *v1obj.Marks, dst []byte, path string, anc []event.Process) []byte {
	{
		ancLimit := 0
		if e.compact() {
			ancLimit = event.MaxAncestorArgvBytes
		}
		dst = jsonw.AppendKey(dst, "parent_process")
		dst = e.process(st, dst, parentPath(path), &anc[0], nil, false, ancLimit)
		dst = append(jsonw.AppendKey(dst, "ancestry"), '[')
		for i := range anc {
			a := &anc[i]
			dst = append(jsonw.Comma(dst), '{')
			dst = intField(dst, "pid", int64(a.PID))
			dst = st.StrAs(dst, "uid", path, "ancestry.uid", a.ExecID)
			exe := a.Exe
			if exe == "" && len(a.Argv) > 0 {
				exe = a.Argv[0]
			}
			dst = st.OptStrAs(dst, "name", path, "ancestry.name", base(exe))
			dst = st.OptStrAs(dst, "path", path, "ancestry.path", a.Exe)
			if len(a.Argv) > 0 {
				dst = jsonw.AppendKey(dst, "cmd_line")
				var raw string
				var bad bool
				dst, raw, bad = e.cmdLine(dst, a.Argv, ancLimit)
				if bad {
					st.Bad("", path+".ancestry.cmd_line", raw)
				}
			}
			if !a.StartTime.IsZero() {
				dst = msField(dst, "created_time", a.StartTime)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	return dst
}

// ancestorBinaries writes the entries of unmapped.lineaged.binaries for
// the ancestors' binaries.
func (e Encoder) ancestorBinaries(st *v1obj.Marks, dst []byte, anc []event.Process) []byte {
	compact := e.compact()
	for i := range anc {
		switch {
		case anc[i].Binary == nil:
		case compact:
			dst = ancestorBinary(st, dst, &anc[i])
		default:
			dst = binary(st, dst, &anc[i])
		}
	}
	return dst
}

// ancestryCut reports whether compact ancestry cuts the command line of an
// ancestor, or one came cut from the kernel.
func (e Encoder) ancestryCut(anc []event.Process) bool {
	if !e.compact() {
		return false
	}
	for i := range anc {
		if e.argvCut(&anc[i]) {
			return true
		}
		n := 0
		for _, a := range anc[i].Argv {
			n += len(a)
		}
		if n > event.MaxAncestorArgvBytes {
			return true
		}
	}
	return false
}

// boundArgv applies the argv bounds; the cut is flagged in unmapped.
func (e Encoder) boundArgv(argv []string) []string {
	maxArgs := e.Argv.MaxArgs
	if maxArgs <= 0 {
		maxArgs = native.DefaultMaxArgs
	}
	maxArg := e.Argv.MaxArgBytes
	if maxArg <= 0 {
		maxArg = native.DefaultMaxArgBytes
	}
	if len(argv) > maxArgs {
		argv = argv[:maxArgs]
	}
	for _, a := range argv {
		if len(a) > maxArg {
			// Rare: copy so the caller's slice is untouched.
			out := make([]string, len(argv))
			for i, x := range argv {
				out[i] = jsonw.TruncateUTF8(x, maxArg)
			}
			return out
		}
	}
	return argv
}

func (e Encoder) argvCut(p *event.Process) bool {
	if p == nil {
		return false
	}
	if p.ArgvTruncated {
		return true
	}
	maxArgs := e.Argv.MaxArgs
	if maxArgs <= 0 {
		maxArgs = native.DefaultMaxArgs
	}
	maxArg := e.Argv.MaxArgBytes
	if maxArg <= 0 {
		maxArg = native.DefaultMaxArgBytes
	}
	if len(p.Argv) > maxArgs {
		return true
	}
	for _, a := range p.Argv {
		if len(a) > maxArg {
			return true
		}
	}
	return false
}

func assessments(st *v1obj.Marks, dst []byte, p *event.Posture) []byte {
	var buf [32]string
	names := buf[:0]
	for k := range p.Checks {
		names = append(names, k)
	}
	sortStrings(names)
	dst = append(jsonw.AppendKey(dst, "assessments"), '[')
	for _, k := range names {
		c := p.Checks[k]
		dst = append(jsonw.Comma(dst), '{')
		dst = st.Str(dst, "name", "assessments", k)
		dst = jsonw.AppendBool(jsonw.AppendKey(dst, "meets_criteria"), c.OK)
		dst = st.OptStr(dst, "desc", "assessments", c.Detail)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// unmapped carries what OCSF 1.8.0 has no attribute for, under
// unmapped.lineaged (docs/ocsf.md): the native identity of the event, the
// agent session beyond message_context, binary verdicts, posture detail.
func (e Encoder) unmapped(st *v1obj.Marks, dst []byte, ev *event.Event) []byte {
	dst = append(jsonw.AppendKey(dst, "unmapped"), '{')
	dst = append(jsonw.AppendKey(dst, "lineaged"), '{')
	dst = v1obj.Header(st, dst, "unmapped.lineaged", e.V1, ev)
	if a := ev.Agent; a != nil {
		dst = v1obj.Agent(st, dst, "unmapped.lineaged.agent", a)
	}
	if p := ev.Process; p != nil {
		dst = append(jsonw.AppendKey(dst, "process"), '{')
		dst = st.Str(dst, "exec_id", "unmapped.lineaged.process", p.ExecID)
		dst = st.OptStr(dst, "parent_exec_id", "unmapped.lineaged.process", p.ParentExecID)
		dst = st.OptStr(dst, "current_parent_exec_id", "unmapped.lineaged.process", p.CurrentParentExecID)
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "ppid"), uint64(p.PPID))
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "gid"), uint64(p.GID))
		dst = st.OptStr(dst, "login_user", "unmapped.lineaged.process", p.LoginUser)
		dst = st.OptStr(dst, "cgroup", "unmapped.lineaged.process", p.Cgroup)
		dst = st.OptStr(dst, "container_id", "unmapped.lineaged.process", p.ContainerID)
		if p.MntNS != 0 {
			dst = jsonw.AppendUint(jsonw.AppendKey(dst, "mnt_ns"), uint64(p.MntNS))
		}
		if len(p.ExeFlags) > 0 {
			dst = st.StrList(dst, "exe_flags", "unmapped.lineaged.process", p.ExeFlags)
		}
		if b := p.Loaded; b != nil {
			dst = loaded(st, jsonw.AppendKey(dst, "loaded"), "unmapped.lineaged.process.loaded", "", b)
		}
		if p.AgentLookalike {
			dst = append(jsonw.AppendKey(dst, "agent_lookalike"), "true"...)
		}
		if p.Held {
			dst = append(jsonw.AppendKey(dst, "held"), "true"...)
		}
		if e.argvCut(p) {
			dst = jsonw.AppendBool(jsonw.AppendKey(dst, "argv_truncated"), true)
			dst = jsonw.AppendUint(jsonw.AppendKey(dst, "argc"), uint64(len(p.Argv)))
		}
		dst = append(dst, '}')
	}
	// Verdicts of every binary in the chain, the process first.
	if ev.Process != nil && ev.Process.Binary != nil || len(ev.Ancestry) > 0 {
		dst = append(jsonw.AppendKey(dst, "binaries"), '[')
		if ev.Process != nil && ev.Process.Binary != nil {
			dst = binary(st, dst, ev.Process)
		}
		if b, keep := e.Shared.Lookup(ev.Ancestry, partBinaries); b != nil {
			// The kept entries follow the process's own, if any.
			if ev.Process != nil && ev.Process.Binary != nil && len(b) > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, b...)
		} else {
			start, marks, room := len(dst), st.Count(), st.Room()
			dst = e.ancestorBinaries(st, dst, ev.Ancestry)
			if keep && room && st.Count() == marks {
				b := dst[start:]
				if len(b) > 0 && b[0] == ',' {
					b = b[1:]
				}
				e.Shared.Keep(ev.Ancestry, partBinaries, b)
			}
		}
		dst = append(dst, ']')
	}
	if e.ancestryCut(ev.Ancestry) {
		dst = jsonw.AppendBool(jsonw.AppendKey(dst, "ancestry_argv_truncated"), true)
	}
	dst = ancestryExeFlags(st, dst, ev.Ancestry)
	dst = ancestryLoaded(st, dst, ev.Ancestry)
	dst = ancestryLookalikes(st, dst, ev.Ancestry)
	if id := ev.Identity; id != nil {
		dst = append(jsonw.AppendKey(dst, "identity"), '{')
		dst = st.OptStr(dst, "login_user", "unmapped.lineaged.identity", id.LoginUser)
		if id.LoginUID != nil {
			dst = jsonw.AppendUint(jsonw.AppendKey(dst, "login_uid"), uint64(*id.LoginUID))
		}
		dst = st.OptStr(dst, "verified_by", "unmapped.lineaged.identity", id.VerifiedBy)
		dst = append(dst, '}')
	}
	if p := ev.Posture; p != nil {
		dst = append(jsonw.AppendKey(dst, "posture"), '{')
		dst = jsonw.AppendTime(jsonw.AppendKey(dst, "sampled_at"), p.SampledAt)
		dst = jsonw.AppendBool(jsonw.AppendKey(dst, "compliant"), p.Compliant)
		if len(p.Failed) > 0 {
			dst = st.StrList(dst, "failed", "unmapped.lineaged.posture", p.Failed)
		}
		dst = append(dst, '}')
	}
	if n := ev.Net; n != nil {
		dst = unmappedNet(st, dst, n)
	}
	if f := ev.File; f != nil {
		dst = append(jsonw.AppendKey(dst, "file"), '{')
		dst = st.OptStr(dst, "mode", "unmapped.lineaged.file", f.Mode)
		if f.Created {
			dst = jsonw.AppendBool(jsonw.AppendKey(dst, "created"), true)
		}
		if f.Flags != 0 {
			dst = jsonw.AppendUint(jsonw.AppendKey(dst, "flags"), uint64(f.Flags))
		}
		if f.Perm != nil {
			dst = jsonw.AppendUint(jsonw.AppendKey(dst, "perm"), uint64(*f.Perm))
		}
		if f.PathTruncated {
			dst = jsonw.AppendBool(jsonw.AppendKey(dst, "path_truncated"), true)
		}
		dst = st.OptStr(dst, "syscall_abi", "unmapped.lineaged.file", f.SyscallABI)
		dst = fileSource(st, dst, f)
		dst = fileModify(st, dst, f)
		dst = append(dst, '}')
	}
	if x := ev.Exit; x != nil && (x.Signal != 0 || x.CoreDumped || x.RepeatedOpens != 0) {
		dst = append(jsonw.AppendKey(dst, "exit"), '{')
		dst = jsonw.AppendInt(jsonw.AppendKey(dst, "signal"), int64(x.Signal))
		if x.CoreDumped {
			dst = jsonw.AppendBool(jsonw.AppendKey(dst, "core_dumped"), true)
		}
		if x.RepeatedOpens != 0 {
			dst = jsonw.AppendUint(jsonw.AppendKey(dst, "repeated_opens"), uint64(x.RepeatedOpens))
		}
		dst = append(dst, '}')
	}
	if a := ev.Alert; a != nil {
		dst = append(jsonw.AppendKey(dst, "alert"), '{')
		dst = st.Str(dst, "rule", "unmapped.lineaged.alert", a.Rule)
		dst = st.Str(dst, "severity", "unmapped.lineaged.alert", a.Severity)
		dst = st.OptStr(dst, "action", "unmapped.lineaged.alert", a.Action)
		dst = st.OptStr(dst, "result", "unmapped.lineaged.alert", a.Result)
		if a.Killed != nil {
			dst = jsonw.AppendInt(jsonw.AppendKey(dst, "killed"), int64(*a.Killed))
		}
		dst = st.OptStr(dst, "trigger_event_id", "unmapped.lineaged.alert", a.TriggerEventID)
		dst = append(dst, '}')
	}
	if l := ev.Loss; l != nil {
		dst = v1obj.Loss(st, dst, "unmapped.lineaged.loss", l)
	}
	if s := ev.Sensor; s != nil {
		dst = append(jsonw.AppendKey(dst, "sensor"), '{')
		dst = st.OptStr(dst, "scope", "unmapped.lineaged.sensor", s.Scope)
		dst = st.OptStr(dst, "source", "unmapped.lineaged.sensor", s.Source)
		dst = st.OptStr(dst, "hooks", "unmapped.lineaged.sensor", s.Hooks)
		dst = st.OptStr(dst, "previous_instance_id", "unmapped.lineaged.sensor", s.PreviousInstanceID)
		dst = st.OptStr(dst, "previous_end", "unmapped.lineaged.sensor", s.PreviousEnd)
		dst = append(dst, '}')
	}
	if t := ev.Tool; t != nil {
		dst = v1obj.Tool(st, dst, "unmapped.lineaged.tool", t)
	}
	if s := ev.Session; s != nil {
		dst = v1obj.Session(st, dst, "unmapped.lineaged.session", s)
	}
	if c := ev.Checkpoint; c != nil {
		dst = v1obj.Checkpoint(st, dst, "unmapped.lineaged.checkpoint", c)
	}
	if t := ev.Tamper; t != nil {
		dst = v1obj.Tamper(st, dst, "unmapped.lineaged.tamper", t)
	}
	if u := ev.IOURing; u != nil {
		dst = v1obj.IOURing(st, dst, "unmapped.lineaged.io_uring", u)
	}
	if len(ev.Partial) > 0 {
		dst = st.StrList(dst, "partial", "unmapped.lineaged", ev.Partial)
	}
	if ev.Untracked {
		dst = jsonw.AppendBool(jsonw.AppendKey(dst, "untracked"), true)
	}
	dst = st.AppendList(dst)
	return append(dst, '}', '}')
}

func binary(st *v1obj.Marks, dst []byte, p *event.Process) []byte {
	b := p.Binary
	dst = append(jsonw.Comma(dst), '{')
	dst = st.Str(dst, "exec_id", "unmapped.lineaged.binaries", p.ExecID)
	dst = st.Str(dst, "path", "unmapped.lineaged.binaries", b.Path)
	dst = st.OptStr(dst, "sha256", "unmapped.lineaged.binaries", b.SHA256)
	dst = jsonw.AppendUint(jsonw.AppendKey(dst, "inode"), b.Inode)
	dst = jsonw.AppendUint(jsonw.AppendKey(dst, "dev"), b.Dev)
	dst = st.Str(dst, "verdict", "unmapped.lineaged.binaries", b.Verdict)
	dst = st.OptStr(dst, "package", "unmapped.lineaged.binaries", b.Package)
	dst = st.OptStr(dst, "signer", "unmapped.lineaged.binaries", b.Signer)
	dst = st.OptStr(dst, "key_id", "unmapped.lineaged.binaries", b.KeyID)
	dst = st.OptStr(dst, "reason", "unmapped.lineaged.binaries", b.Reason)
	return append(dst, '}')
}

// ancestorBinary is an ancestor's entry of compact ancestry: the verdict
// on its binary; its own process.exec event has the rest.
func ancestorBinary(st *v1obj.Marks, dst []byte, p *event.Process) []byte {
	b := p.Binary
	dst = append(jsonw.Comma(dst), '{')
	dst = st.Str(dst, "exec_id", "unmapped.lineaged.binaries", p.ExecID)
	dst = st.OptStr(dst, "sha256", "unmapped.lineaged.binaries", b.SHA256)
	dst = st.Str(dst, "verdict", "unmapped.lineaged.binaries", b.Verdict)
	dst = st.OptStr(dst, "signer", "unmapped.lineaged.binaries", b.Signer)
	return append(dst, '}')
}

// parentPath names the parent_process of the process at path, as a
// constant for the paths the encoder uses (no allocation per event).
func parentPath(path string) string {
	switch path {
	case "process":
		return "process.parent_process"
	case "actor.process":
		return "actor.process.parent_process"
	case "evidences.process":
		return "evidences.process.parent_process"
	}
	return path + ".parent_process"
}

// attacks writes finding_info.attacks: one ATT&CK object per technique id
// of the rule, a sub-technique (T1552.004) under its technique (T1552).
func attacks(st *v1obj.Marks, dst []byte, ids []string) []byte {
	dst = append(jsonw.AppendKey(dst, "attacks"), '[')
	for _, id := range ids {
		dst = append(jsonw.Comma(dst), '{')
		tech := id
		if i := strings.IndexByte(id, '.'); i > 0 {
			tech = id[:i]
			dst = append(jsonw.AppendKey(dst, "sub_technique"), '{')
			dst = st.Str(dst, "uid", "finding_info.attacks.sub_technique", id)
			dst = append(dst, '}')
		}
		dst = append(jsonw.AppendKey(dst, "technique"), '{')
		dst = st.Str(dst, "uid", "finding_info.attacks.technique", tech)
		dst = append(dst, '}', '}')
	}
	return append(dst, ']')
}

// tamperFinding writes the finding_info, is_alert and message of a
// sensor.tamper.
func tamperFinding(st *v1obj.Marks, dst []byte, eventID string, tp *event.Tamper) []byte {
	title := "sensor tampered: " + tp.Action
	dst = append(jsonw.AppendKey(dst, "finding_info"), '{')
	dst = st.Str(dst, "uid", "finding_info", eventID)
	dst = st.Str(dst, "title", "finding_info", title)
	dst = append(jsonw.AppendKey(dst, "analytic"), '{')
	dst = constStr(dst, "name", "sensor.tamper")
	dst = intField(dst, "type_id", 1)
	dst = rawField(dst, "type", `"Rule"`)
	dst = append(dst, '}')
	dst = append(dst, '}')
	dst = jsonw.AppendBool(jsonw.AppendKey(dst, "is_alert"), true)
	msg := title
	if tp.Request != "" {
		msg += " " + tp.Request
	}
	if tp.Path != "" {
		msg += " " + tp.Path
	}
	if tp.Comm != "" {
		msg += " by " + tp.Comm
	}
	return st.Str(dst, "message", "", msg)
}

// loaded writes the program a dynamic loader ran (process.loaded): OCSF's
// Process Entity names the exec'd file only, the loader. With execID set,
// the ancestor it belongs to is named too.
func loaded(st *v1obj.Marks, dst []byte, prefix, execID string, b *event.Binary) []byte {
	dst = append(dst, '{')
	if execID != "" {
		dst = st.Str(dst, "exec_id", prefix, execID)
	}
	dst = st.Str(dst, "path", prefix, b.Path)
	dst = st.OptStr(dst, "sha256", prefix, b.SHA256)
	dst = st.Str(dst, "verdict", prefix, b.Verdict)
	dst = st.OptStr(dst, "reason", prefix, b.Reason)
	return append(dst, '}')
}

// ancestryLoaded writes unmapped.lineaged.ancestry_loaded: the programs
// ancestors that were a dynamic loader ran, by exec_id. Nothing when no
// ancestor was one.
func ancestryLoaded(st *v1obj.Marks, dst []byte, anc []event.Process) []byte {
	open := false
	for i := range anc {
		a := &anc[i]
		if a.Loaded == nil {
			continue
		}
		if !open {
			dst = append(jsonw.AppendKey(dst, "ancestry_loaded"), '[')
			open = true
		}
		dst = loaded(st, jsonw.Comma(dst), "unmapped.lineaged.ancestry_loaded", a.ExecID, a.Loaded)
	}
	if open {
		dst = append(dst, ']')
	}
	return dst
}

// ancestryExeFlags writes unmapped.lineaged.ancestry_exe_flags: the
// ancestors whose exe is no ordinary path (a memfd, a deleted file, a file
// outside their root), by exec_id. OCSF's Process Entity has no place for
// it. Nothing when no ancestor has any.
func ancestryExeFlags(st *v1obj.Marks, dst []byte, anc []event.Process) []byte {
	open := false
	for i := range anc {
		a := &anc[i]
		if len(a.ExeFlags) == 0 {
			continue
		}
		if !open {
			dst = append(jsonw.AppendKey(dst, "ancestry_exe_flags"), '[')
			open = true
		}
		dst = append(jsonw.Comma(dst), '{')
		dst = st.Str(dst, "exec_id", "unmapped.lineaged.ancestry_exe_flags", a.ExecID)
		dst = st.StrList(dst, "exe_flags", "unmapped.lineaged.ancestry_exe_flags", a.ExeFlags)
		dst = append(dst, '}')
	}
	if open {
		dst = append(dst, ']')
	}
	return dst
}
